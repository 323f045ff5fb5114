"""Whether a request's Host is one the app answers for (``TRUSTED_HOSTS``), asked before Flask.

Flask refuses any other Host with a 400 when it builds the request. The
doors that answer before Flask (``redirects.CachedRedirects``,
``dashboard.fragment_door``) ask the same question with the same werkzeug
function, and hand a refused Host to Flask, so its 400 is the only answer.
"""

from werkzeug.exceptions import SecurityError
from werkzeug.wsgi import get_host


def host_is_trusted(environ, app):
    try:
        get_host(environ, app.config["TRUSTED_HOSTS"])
    except SecurityError:
        return False
    return True

"""Cookie sessions, for the pages that have a user.

The redirect serves strangers at the highest rate of any route and never
reads a session, so it gets none: no cookie parsed, signed or set. (Opening
a session happens before routing, hence the path test.) The serializer is
also built once per key rather than on every request, as Flask's is.
"""

from flask.sessions import SecureCookieSessionInterface

SESSIONLESS_PREFIXES = ("/r/", "/api/", "/healthz", "/metrics", "/static/")


class DashboardSessionInterface(SecureCookieSessionInterface):
    def __init__(self):
        self.serializers = {}

    def open_session(self, app, request):
        if request.path.startswith(SESSIONLESS_PREFIXES):
            return None  # Flask substitutes a read-only null session
        return super().open_session(app, request)

    def get_signing_serializer(self, app):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if keys not in self.serializers:
            self.serializers[keys] = super().get_signing_serializer(app)
        return self.serializers[keys]

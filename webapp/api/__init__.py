"""The JSON API under /api: bearer tokens, JSON errors only."""

from flask import Blueprint, jsonify
from werkzeug.exceptions import HTTPException, default_exceptions

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.errorhandler(HTTPException)
def json_error(exc):
    return jsonify(error=exc.description), exc.code


# Flask prefers any handler registered for a status code, even the app's HTML
# error pages, to a blueprint's handler for a class: claim each code as well.
for code in default_exceptions:
    bp.register_error_handler(code, json_error)


from webapp.api import links, pageviews  # noqa: E402,F401  (registers the routes on bp)

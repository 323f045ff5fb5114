"""The JSON API under /api: bearer tokens, JSON errors only."""

from flask import Blueprint
from werkzeug.exceptions import HTTPException, default_exceptions

from webapp.api.errors import ApiError, error_response

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.errorhandler(ApiError)
def api_error(exc):
    return error_response(exc.message, exc.status, exc.details)


@bp.errorhandler(HTTPException)
def json_error(exc):
    return error_response(exc.description, exc.code)


# Flask prefers any handler registered for a status code, even the app's HTML
# error pages, to a blueprint's handler for a class: claim each code as well.
for code in default_exceptions:
    bp.register_error_handler(code, json_error)


from webapp.api import bulk, docs, links, pageviews, stats  # noqa: E402,F401  (registers the routes on bp)

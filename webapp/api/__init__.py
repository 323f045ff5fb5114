"""The JSON API under /api: bearer tokens, JSON errors only."""

from flask import Blueprint, jsonify
from werkzeug.exceptions import HTTPException

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.errorhandler(HTTPException)
def json_error(exc):
    return jsonify(error=exc.description), exc.code


from webapp.api import links, pageviews  # noqa: E402,F401  (registers the routes on bp)

"""POST /api/pageviews: accept page views into this process's spool; the drain writes them."""

import logging

from flask import jsonify, request

from webapp.api import bp
from webapp.auth.tokens import token_required
from webapp.pageviews.ingest import InvalidPageView, app_pageview_log, lines_from_payload

log = logging.getLogger(__name__)


@bp.post("/pageviews")
@token_required
def ingest_pageviews():
    payload = request.get_json(silent=True)
    if payload is None:
        return jsonify(error="request body must be JSON: one page view or a list of them"), 400
    try:
        lines = lines_from_payload(payload)
    except InvalidPageView as exc:
        return jsonify(error=str(exc)), 400
    try:
        app_pageview_log().append_all(lines)
    except OSError as exc:
        # Not accepted, so nothing is lost: the sender keeps the views and retries.
        log.error("page-view spool unwritable, answering 503: %s", exc)
        response = jsonify(error="the page-view spool is unavailable; retry shortly")
        response.headers["Retry-After"] = "5"
        return response, 503
    return jsonify(accepted=len(lines)), 202

"""POST /api/pageviews: accept page views into the buffer; the drain writes them."""

from flask import jsonify, request
from redis import RedisError

from webapp.api import bp
from webapp.auth.tokens import token_required
from webapp.pageviews.ingest import PAGEVIEW_BUFFER, InvalidPageView, messages_from_payload
from webapp.redis_client import request_redis


@bp.post("/pageviews")
@token_required
def ingest_pageviews():
    payload = request.get_json(silent=True)
    if payload is None:
        return jsonify(error="request body must be JSON: one page view or a list of them"), 400
    try:
        messages = messages_from_payload(payload)
    except InvalidPageView as exc:
        return jsonify(error=str(exc)), 400
    guard = request_redis()
    try:
        PAGEVIEW_BUFFER.append(guard.client, messages)
    except RedisError:
        # Not accepted, so nothing is lost: the sender keeps the views and retries.
        guard.mark_down()
        response = jsonify(error="the page-view buffer is unavailable; retry shortly")
        response.headers["Retry-After"] = "5"
        return response, 503
    return jsonify(accepted=len(messages)), 202

"""POST /api/links/bulk and a link's QR code."""

from flask import Response, g, jsonify, request

from webapp.api import bp
from webapp.api.errors import ApiError
from webapp.api.links import find_link
from webapp.auth.tokens import token_required
from webapp.links import bulk
from webapp.links.qr import InvalidQrRequest, parse_scale, qr_code
from webapp.links.representation import link_json, short_url


@bp.post("/links/bulk")
@token_required
def bulk_create():
    """Up to ``bulk.MAX_ITEMS`` links at once; each item succeeds or fails alone (200 with
    a result per item, in order: created, existing or error)."""
    body = request.get_json(silent=True)
    items = body.get("links") if isinstance(body, dict) else body
    try:
        results = bulk.create_many(items, g.api_user)
    except bulk.InvalidBatch as exc:
        raise ApiError(str(exc)) from None
    return jsonify(results=[result_json(result) for result in results])


def result_json(result):
    answer = {"index": result.index, "status": result.status}
    if result.link is not None:
        answer["link"] = link_json(result.link)
    if result.error:
        answer["error"] = result.error
    return answer


@bp.get("/links/<slug>/qr")
@token_required
def link_qr(slug):
    link = find_link(slug)
    try:
        image, mimetype = qr_code(
            short_url(link.slug), request.args.get("format", "svg"), parse_scale(request.args.get("size"))
        )
    except InvalidQrRequest as exc:
        raise ApiError(str(exc)) from None
    response = Response(image, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f'inline; filename="{link.slug}.{request.args.get("format", "svg")}"'
    )
    return response

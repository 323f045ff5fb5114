"""The API's description (OpenAPI 3.1) and its docs page; both public, like any API's docs."""

from flask import jsonify, render_template, request

from webapp.api import bp
from webapp.api.openapi import spec


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(spec(request.host_url.rstrip("/")))


@bp.get("/docs")
def api_docs():
    return render_template("api_docs.html")

"""The API's error answers: ``{"error": message, "details": ...}`` with a 4xx code."""

from flask import jsonify, request


class ApiError(Exception):
    """Raised by a view to answer with an error; registered on the blueprint."""

    def __init__(self, message, status=400, details=None):
        super().__init__(message)
        self.message, self.status, self.details = message, status, details


def error_response(message, status, details=None):
    body = {"error": message}
    if details is not None:
        body["details"] = details
    return jsonify(body), status


def json_object():
    """The request body as a JSON object, or raise ``ApiError``."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError('request body must be a JSON object, e.g. {"url": "https://example.com"}')
    return body


def query_int(name, default, low, high):
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or not low <= int(raw) <= high:
        raise ApiError(f"{name} must be a whole number from {low} to {high}", details={"parameter": name})
    return int(raw)

"""Opaque cursors for keyset pagination: the sort values of the last item of a page.

A cursor is base64url JSON; clients pass it back untouched. Keyset rather
than offset pagination, so page 1,000 costs what page 1 does and a link
created meanwhile neither repeats nor hides an item.
"""

import base64
import binascii
import json

from webapp.api.errors import ApiError
from webapp.links.validation import is_encodable


def encode_cursor(values):
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(text, length):
    """The list of ``length`` values a cursor carries, or raise ``ApiError``."""
    try:
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    valid = isinstance(values, list) and len(values) == length
    if not valid or not all(map(storable, values)):
        raise ApiError("cursor is not one this API gave out", details={"parameter": "cursor"})
    return values


def storable(value):
    """A value the database can compare with: a 64-bit integer or encodable text
    (json.loads makes lone surrogates of ``\\ud800`` and integers of any size)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) < value < 2**63
    return isinstance(value, str) and is_encodable(value)

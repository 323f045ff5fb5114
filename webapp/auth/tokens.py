"""API bearer tokens: shown once at creation, stored only as a SHA-256."""

import hashlib
import secrets
from datetime import timedelta
from functools import wraps

from flask import g, jsonify, request
from sqlalchemy import update

from webapp.extensions import db
from webapp.models import ApiToken, utcnow

TOKEN_PREFIX = "cb_"
# "Last used" is kept to the minute: a busy token costs one UPDATE a minute,
# not one per API call (page-view ingest makes many).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(plaintext):
    return hashlib.sha256(plaintext.encode()).hexdigest()


def issue_token(user, name):
    """Create a token for ``user``; return ``(ApiToken, plaintext)``."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=name, token_hash=hash_token(plaintext))
    db.session.add(token)
    db.session.commit()
    return token, plaintext


def revoke_token(token):
    token.revoked_at = utcnow()
    db.session.commit()


def token_from_header(header):
    scheme, _, plaintext = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not plaintext.strip():
        return None
    query = db.select(ApiToken).where(
        ApiToken.token_hash == hash_token(plaintext.strip()), ApiToken.revoked_at.is_(None)
    )
    return db.session.execute(query).scalar_one_or_none()


def note_use(token):
    """Record that ``token`` was used now, unless that was already recorded this minute."""
    now = utcnow()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    db.session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    db.session.commit()


def token_required(view):
    """Reject requests without a valid ``Authorization: Bearer`` token (401 JSON)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        token = token_from_header(request.headers.get("Authorization"))
        if token is None:
            response = jsonify(error="a valid API token is required: Authorization: Bearer <token>")
            response.headers["WWW-Authenticate"] = 'Bearer realm="clickboard"'
            return response, 401
        note_use(token)
        g.api_user = token.user
        return view(*args, **kwargs)

    return wrapper

"""Creating users, the first admin from ADMIN_EMAIL / ADMIN_PASSWORD, a new user's time zone."""

import functools
import re
import secrets

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from webapp import periods
from webapp.extensions import db
from webapp.models import User

EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MIN_PASSWORD_LENGTH = 8


class InvalidUser(ValueError):
    pass


def create_user(email, password, is_admin=False):
    email = (email or "").strip().lower()
    if not EMAIL_PATTERN.fullmatch(email) or len(email) > 254:
        raise InvalidUser(f"'{email}' is not a valid email address")
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidUser(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if db.session.execute(db.select(User.id).where(User.email == email)).first():
        raise InvalidUser(f"a user with email {email} already exists")
    user = User(email=email, is_admin=is_admin)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def ensure_admin(email, password):
    """Create the first admin if there are no users; return (user, generated password or None)."""
    existing = db.session.execute(db.select(User).order_by(User.id).limit(1)).scalar_one_or_none()
    if existing is not None:
        return existing, None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    return create_user(email, password, is_admin=True), generated


def find_user(email):
    return db.session.execute(
        db.select(User).where(User.email == (email or "").strip().lower())
    ).scalar_one_or_none()


def adopt_browser_time_zone(user, name):
    """At login: a user without a time zone takes the browser's, if it is one we know."""
    if user.time_zone or not name:
        return
    try:
        periods.zone_named(name)
    except periods.InvalidPeriod:
        return
    user.time_zone = name
    db.session.commit()


@functools.lru_cache(maxsize=4)
def decoy_hash(method):
    """A hash to check a password against when the email is unknown (see ``authenticate``)."""
    return generate_password_hash(secrets.token_urlsafe(16), method=method)


def authenticate(email, password):
    """The user with this email and password, or None.

    An unknown email costs a password check too, against a decoy hash of the
    same method: otherwise the answer's time would say which emails exist.
    """
    user = find_user(email)
    if user is None:
        check_password_hash(decoy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password or "")
        return None
    return user if user.check_password(password) else None

"""Viewer records: what the door before Flask (``fragment_door``) needs to know of a user.

A shared fragment's copy is keyed by the viewer's scope and time zone
(``shared_fragments.fragment_key``), which Flask learns by loading the user
from the database on every request. The door answers without the database:
Flask's fragment path, having just loaded the user, leaves in Redis the
session epoch, scope and zone it keyed the copy with, and the door serves a
cookie only while that record says the cookie's epoch is still the user's.

The record is written with NX and lives ``RECORD_SECONDS`` from its
write: it is never prolonged, so every user passes through Flask (and its
database check) at least once per ``RECORD_SECONDS``. A commit that
changes what the record holds (the epoch: logout, password change; the
zone; the admin flag) or deletes the user replaces it with a tombstone for
as long: a request that loaded the user before that commit and writes its
record after it (a request lasts far less than that: gunicorn's timeout)
cannot bring the old state back (NX fails). What nothing
here can cover (Redis unreachable at that commit, a bulk UPDATE that
bypasses the ORM) lasts until the record expires: ``RECORD_SECONDS``.
"""

import json
import logging

from flask import current_app
from redis import RedisError
from sqlalchemy import event, inspect

from webapp.extensions import db
from webapp.keys import key
from webapp.models import User
from webapp.redis_client import request_redis

log = logging.getLogger(__name__)

RECORD_SECONDS = 60
# The user columns a record is made of (the scope is decided by is_admin).
RECORDED = ("session_epoch", "time_zone", "is_admin")
TOMBSTONE = json.dumps(None)
CHANGED = "clickboard.viewer_records_changed"  # the user ids a session's commit must forget


def record_key(namespace, user_id):
    return key(namespace, "fragment-viewer", str(user_id))


def remember(pipe, namespace, user_id, epoch, scope, zone):
    """Queue on ``pipe`` the record of a user Flask has just loaded: unless one (or a
    tombstone) is there already."""
    record = json.dumps([epoch, scope, zone])
    pipe.set(record_key(namespace, user_id), record, ex=RECORD_SECONDS, nx=True)


def parse(value):
    """[epoch, scope, zone] of a stored record, or None (none, or a tombstone)."""
    return None if value is None else json.loads(value)


def forget(user_ids):
    """Replace these users' records with tombstones. Redis down: their records expire anyway."""
    if not user_ids:
        return  # most commits (every drain's) change no user
    guard = request_redis()
    if not guard.available:
        return
    namespace = current_app.config["CLICKBOARD_NAMESPACE"]
    try:
        with guard.client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.set(record_key(namespace, user_id), TOMBSTONE, ex=RECORD_SECONDS)
            pipe.execute()
    except RedisError:
        guard.mark_down()
        log.warning("could not forget the viewer records of users %s; they expire by themselves", user_ids)


@event.listens_for(db.session, "after_flush")
def note_changed_users(session, flush_context):
    """Remember, until the commit, which users' recorded columns this flush changed."""
    changed = session.info.setdefault(CHANGED, set())
    for obj in session.deleted:
        if isinstance(obj, User):
            changed.add(obj.id)
    for obj in session.dirty:
        if isinstance(obj, User) and any(inspect(obj).attrs[name].history.has_changes() for name in RECORDED):
            changed.add(obj.id)


@event.listens_for(db.session, "after_commit")
def forget_changed_users(session):
    # After the commit, not before: a record written between a tombstone and the commit would
    # hold the old state. (A rolled-back change is forgotten at the next commit: harmless.)
    forget(session.info.pop(CHANGED, set()))

"""The local spool: where clicks wait while Redis or the broker is down.

Each process appends JSON lines to its own file in ``CLICK_SPOOL_DIR``.
Replaying moves a file aside with an atomic rename (so two replayers never
take the same file), pushes its clicks into the Redis buffer and deletes
it. A writer holds an exclusive ``flock`` while it appends and checks that
its file was not renamed meanwhile, so no click is written into a file
that a replayer has already read. Replay can repeat clicks if it dies half
way; event ids make the drain count each once.

Replay is triggered from two places: the web process that spooled, as
soon as Redis answers again, and the periodic ``replay_click_spool`` task
(which also picks up the files of processes that died).
"""

import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid

from flask import current_app

from webapp.clicks import buffer
from webapp.redis_client import worker_redis

log = logging.getLogger(__name__)

REPLAY_CHUNK = 1000
# A claimed file this old belongs to a replayer that died: take it over.
STALE_CLAIM_SECONDS = 120
REPLAY_CHECK_SECONDS = 5.0
state = {"spooled": False, "next_replay_at": 0.0}


def spool_dir():
    path = current_app.config["CLICK_SPOOL_DIR"]
    os.makedirs(path, exist_ok=True)
    return path


def own_file_path():
    return os.path.join(spool_dir(), f"clicks-{socket.gethostname()}-{os.getpid()}.jsonl")


def append(message):
    """Append one click; raises OSError only if the disk itself fails."""
    line = (json.dumps(message, separators=(",", ":")) + "\n").encode()
    path = own_file_path()
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if still_at_path(fd, path):
                os.write(fd, line)
                state["spooled"] = True
                return
        finally:
            os.close(fd)


def still_at_path(fd, path):
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def replay_soon_if_pending():
    """After an outage, replay this process's spool in the background."""
    if not state["spooled"] or time.monotonic() < state["next_replay_at"]:
        return
    state["spooled"] = False
    state["next_replay_at"] = time.monotonic() + REPLAY_CHECK_SECONDS
    app = current_app._get_current_object()
    threading.Thread(target=replay_in_thread, args=(app,), daemon=True).start()


def replay_in_thread(app):
    with app.app_context():
        try:
            replay_all()
        except Exception:  # noqa: BLE001 - a background thread has nobody to raise to
            log.exception("spool replay failed; the periodic task will retry")
            state["spooled"] = True


def replay_all():
    """Replay every spool file in the directory; return the clicks pushed."""
    directory = spool_dir()
    replayed = 0
    for name in sorted(os.listdir(directory)):
        claimed = claim(directory, name)
        if claimed:
            replayed += replay_file(claimed)
    return replayed


def claim(directory, name):
    path = os.path.join(directory, name)
    if name.startswith("claimed-"):
        try:
            if time.time() - os.stat(path).st_mtime < STALE_CLAIM_SECONDS:
                return None
        except FileNotFoundError:
            return None
    elif not name.startswith("clicks-"):
        return None
    claimed = os.path.join(directory, f"claimed-{uuid.uuid4().hex}.jsonl")
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None  # another replayer was first
    return claimed


def replay_file(path):
    with open(path, "rb") as spool_file:
        fcntl.flock(spool_file, fcntl.LOCK_EX)  # waits out a writer mid-append
        messages = list(read_messages(spool_file, path))
    client = worker_redis()
    for start in range(0, len(messages), REPLAY_CHUNK):
        buffer.append(client, messages[start : start + REPLAY_CHUNK])
    client.incrby(buffer.METRIC_KEYS["clicks_replayed"], len(messages))
    os.unlink(path)
    if messages:
        log.info("replayed %d spooled clicks from %s", len(messages), path)
    return len(messages)


def read_messages(spool_file, path):
    for number, line in enumerate(spool_file, 1):
        try:
            message = json.loads(line)
        except ValueError:
            log.error("skipping unreadable line %d of %s", number, path)
            continue
        if isinstance(message, dict):
            yield {str(key): str(value) for key, value in message.items()}


def pending_count():
    """Spool files waiting in this host's directory (for health and metrics)."""
    try:
        return sum(1 for name in os.listdir(current_app.config["CLICK_SPOOL_DIR"]) if name.endswith(".jsonl"))
    except FileNotFoundError:
        return 0

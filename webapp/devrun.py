"""``make run``: the whole product from one command.

Starts an embedded Redis unless ``REDIS_URL`` is set, migrates, creates the
admin and demo data on first run, then supervises the processes of the
``Procfile`` (web, worker, beat) with ``webapp.supervisor``: Ctrl-C, a
closed terminal or a killed supervisor stops every one of them, and one that
exits by itself is started again.

Everything is private to the checkout's instance folder (``instance/``, or
``CLICKBOARD_INSTANCE_PATH``): the embedded Redis listens on a unix socket
there, not on a shared port, and ``instance/devrun.json`` tells ``flask``
commands run in another terminal which Redis that is (see ``devstate``).
Two checkouts, or two instance folders with their own ``PORT``, run side by
side without meeting.
"""

import os
import shlex
import sys

from dotenv import load_dotenv
from flask_migrate import upgrade

from webapp import PROJECT_ROOT, devstate, embedded_redis
from webapp.cli.setup import run_setup
from webapp.config import instance_path
from webapp.factory import create_app
from webapp.supervisor import Supervisor


def main():
    load_dotenv()
    instance = instance_path()
    running = devstate.running_pid(instance)
    if running and running != os.getpid():
        sys.exit(f"Error: `make run` is already running for {instance} (pid {running})")
    os.environ.setdefault("CLICKBOARD_DEV", "1")
    os.environ.setdefault("PORT", "8000")
    supervisor = Supervisor(PROJECT_ROOT, os.environ)
    try:
        recorded = {"CLICKBOARD_DEV": os.environ["CLICKBOARD_DEV"]}
        if not os.environ.get("REDIS_URL"):
            recorded.update(start_embedded_redis(supervisor, instance))
        os.environ.update(recorded)
        devstate.record(instance, recorded)
        admin_email = prepare_database()
        for name, argv in procfile_processes(instance):
            supervisor.add(name, argv)
        print_banner(admin_email)
        return supervisor.run()
    finally:
        supervisor.stop()
        devstate.forget(instance)


def start_embedded_redis(supervisor, instance):
    """Start the checkout's own Redis under the supervisor; return the settings that reach it."""
    data_dir = os.path.join(instance, "redis")
    os.makedirs(data_dir, exist_ok=True)
    port, socket_path = private_address(data_dir)
    argv = embedded_redis.command(data_dir, port=port, socket_path=socket_path)
    supervisor.add(
        "redis",
        argv,
        ready=lambda process: embedded_redis.wait_until_ready(port, process, socket_path=socket_path),
    )
    print(f"embedded Redis on {socket_path or f'127.0.0.1:{port}'} (data in {data_dir})")
    return {
        "REDIS_URL": embedded_redis.url(port, socket_path),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL")
        or embedded_redis.broker_url(port, socket_path),
    }


def private_address(data_dir):
    """(port, socket path): a unix socket in the instance folder, or EMBEDDED_REDIS_PORT if set.

    A folder too deep for a socket address gets a free port instead.
    """
    if os.environ.get("EMBEDDED_REDIS_PORT"):
        return int(os.environ["EMBEDDED_REDIS_PORT"]), None
    socket_path = os.path.join(data_dir, "redis.sock")
    if len(socket_path) <= embedded_redis.SOCKET_PATH_MAX:
        return 0, socket_path
    return embedded_redis.free_port(), None


def prepare_database():
    app = create_app()
    with app.app_context():
        upgrade()
        for line in run_setup(demo=True):
            print(line)
        return app.config["ADMIN_EMAIL"]


def procfile_processes(instance):
    """(name, argv) of each Procfile line; a path under ``instance/`` means this install's folder."""
    with open(os.path.join(PROJECT_ROOT, "Procfile")) as procfile:
        lines = [line.strip() for line in procfile if line.strip() and not line.startswith("#")]
    processes = []
    for line in lines:
        name, command = line.split(":", 1)
        argv = [
            os.path.join(instance, arg[len("instance/") :]) if arg.startswith("instance/") else arg
            for arg in shlex.split(command)
        ]
        processes.append((name.strip(), argv))
    return processes


def print_banner(admin_email):
    port = os.environ["PORT"]
    print(f"\n  Clickboard: http://127.0.0.1:{port}   (Ctrl-C stops everything)")
    print(f"  Log in as {admin_email} (password printed on the first run, or ADMIN_PASSWORD);")
    print("  add users with: .venv/bin/flask users create EMAIL")
    print("  (flask commands in another terminal reach this Redis and database by themselves)\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())

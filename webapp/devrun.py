"""``make run``: the whole product from one command.

Starts an embedded Redis unless ``REDIS_URL`` is set, migrates, creates the
admin and demo data on first run, then supervises the processes of the
``Procfile`` (web, worker, beat) with honcho. Ctrl-C stops every one of them.
"""

import os
import sys

from dotenv import load_dotenv
from flask_migrate import upgrade
from honcho.environ import parse_procfile
from honcho.manager import Manager

from webapp import PROJECT_ROOT, embedded_redis


def main():
    load_dotenv()
    os.environ.setdefault("CLICKBOARD_DEV", "1")
    redis_process = None
    if not os.environ.get("REDIS_URL"):
        port = int(os.environ.get("EMBEDDED_REDIS_PORT", embedded_redis.DEFAULT_PORT))
        redis_dir = os.path.join(PROJECT_ROOT, "instance", "redis")
        redis_process = embedded_redis.start(port, redis_dir)
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        print(f"embedded Redis on 127.0.0.1:{port} (data in {redis_dir})")
    try:
        admin_email = prepare_database()
        return supervise(admin_email)
    finally:
        if redis_process is not None:
            embedded_redis.stop(redis_process)


def prepare_database():
    from webapp import create_app
    from webapp.cli.setup import run_setup

    app = create_app()
    with app.app_context():
        upgrade()
        for line in run_setup(demo=True):
            print(line)
        return app.config["ADMIN_EMAIL"]


def supervise(admin_email):
    with open(os.path.join(PROJECT_ROOT, "Procfile")) as procfile:
        processes = parse_procfile(procfile.read()).processes
    port = os.environ.setdefault("PORT", "8000")
    print(f"\n  Clickboard: http://127.0.0.1:{port}   (Ctrl-C stops everything)")
    print(f"  Log in as {admin_email} (password printed on the first run, or ADMIN_PASSWORD);")
    print("  add users with: .venv/bin/flask users create EMAIL\n")
    manager = Manager()
    for name, command in processes.items():
        manager.add_process(name, command, env=dict(os.environ), cwd=PROJECT_ROOT)
    manager.loop()
    return manager.returncode


if __name__ == "__main__":
    sys.exit(main())

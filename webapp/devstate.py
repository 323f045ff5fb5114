"""What a running ``make run`` tells the commands started beside it.

``make run`` chooses some settings itself (the embedded Redis's private
socket, development mode) and passes them to the processes it starts. A
``flask`` command typed in a second terminal needs the same ones to reach
the same Redis and to use the checkout's development secret, so ``make run``
records them in ``instance/devrun.json`` while it runs and removes the file
when it stops. ``create_app`` fills in from the file what the environment
does not set: explicit variables always win.

A file whose ``make run`` is gone (it was SIGKILLed) is not trusted: the
Redis it names is gone too. Commands that would need it stop with a
one-line error saying so, and the next ``make run`` replaces it.
"""

import contextlib
import json
import os

from webapp.config import ConfigError

FILE_NAME = "devrun.json"


def path(instance):
    return os.path.join(instance, FILE_NAME)


def record(instance, settings):
    """Write the file for this process (the supervisor), atomically."""
    os.makedirs(instance, exist_ok=True)
    temporary = path(instance) + ".tmp"
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        json.dump({"pid": os.getpid(), "settings": settings}, file)
    os.replace(temporary, path(instance))


def forget(instance):
    """Remove the file if this process wrote it."""
    recorded = read(instance)
    if recorded and recorded.get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path(instance))


def read(instance):
    try:
        with open(path(instance)) as file:
            return json.load(file)
    except (FileNotFoundError, ValueError):
        return None


def running_pid(instance):
    """The pid of this checkout's live ``make run``, or None."""
    recorded = read(instance)
    pid = recorded and recorded.get("pid")
    return pid if isinstance(pid, int) and is_devrun(pid) else None


def is_devrun(pid):
    if pid == os.getpid():
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"webapp.devrun" in cmdline.read()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: trust the pid alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def environment_beside(instance, environ):
    """``environ`` completed with what a running ``make run`` recorded (environ wins)."""
    recorded = read(instance)
    if not recorded:
        return environ
    missing = {name: value for name, value in recorded.get("settings", {}).items() if name not in environ}
    if not missing:
        return environ
    if running_pid(instance) is None:
        raise ConfigError(
            f"{path(instance)} was left by a `make run` that is no longer running: "
            "start `make run` again, or delete the file and set REDIS_URL and SECRET_KEY"
        )
    return {**missing, **environ}

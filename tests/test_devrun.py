"""``make run`` as a user meets it: two side by side, the CLI beside it, nothing left behind.

Each stack is the real ``python -m webapp.devrun`` (what ``make run`` runs)
with its own instance folder and port: embedded Redis, gunicorn, worker and
beat under the supervisor. The supervisor gets SIGTERM if pytest dies, so
its watchdog ends the rest even then.
"""

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest
import requests

from tests.processes import die_with_test, free_port, wait_for
from webapp import PROJECT_ROOT

pytestmark = pytest.mark.integration

# Settings a developer's shell would not have: make run must choose its own.
NOT_INHERITED = (
    "REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL", "SECRET_KEY", "CLICKBOARD_NAMESPACE",
    "CLICKBOARD_DEV", "EMBEDDED_REDIS_PORT", "CLICKBOARD_INSTANCE_PATH", "PORT", "FLASK_APP",
)  # fmt: skip


def plain_environment(instance, **settings):
    env = {name: value for name, value in os.environ.items() if name not in NOT_INHERITED}
    return {**env, "CLICKBOARD_INSTANCE_PATH": str(instance), **settings}


def run_flask(instance, *args):
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "flask"), *args],
        cwd=PROJECT_ROOT,
        env=plain_environment(instance),
        capture_output=True,
        text=True,
        timeout=60,
    )


class DevRun:
    """One ``make run`` in its own instance folder, on a free port."""

    def __init__(self, instance):
        self.instance = instance
        self.port = free_port()
        self.log_path = instance.parent / f"{instance.name}-devrun.log"
        env = plain_environment(
            instance, PORT=str(self.port), ADMIN_PASSWORD="devrun password", WEB_CONCURRENCY="1"
        )
        env["CLICK_DRAIN_INTERVAL"] = "0.5"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "webapp.devrun"],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_test(),
            )
        self.url = f"http://127.0.0.1:{self.port}"
        wait_for(self.healthy, timeout=120, interval=0.5, message=f"make run to be healthy ({self.log_path})")

    def healthy(self):
        if self.process.poll() is not None:
            raise AssertionError(f"make run exited:\n{self.log_path.read_text()[-3000:]}")
        with contextlib.suppress(requests.ConnectionError):
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        return False

    def started_processes(self):
        """Every process the supervisor started, and theirs: its descendants."""
        return descendants(self.process.pid)

    def flask(self, *args):
        """A ``flask`` command typed in a second terminal: only the instance folder is set."""
        return run_flask(self.instance, *args)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(30)
        kill_all(self.started_processes() | {self.process.pid})
        self.process.wait()


def children_by_parent():
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, IndexError), open(f"/proc/{name}/stat") as stat:
                parents.setdefault(int(stat.read().rsplit(")", 1)[1].split()[1]), []).append(int(name))
    return parents


def descendants(pid):
    tree, found, todo = children_by_parent(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids):
    """The pids still running (zombies count as gone)."""
    running = set()
    for pid in pids:
        with contextlib.suppress(OSError, IndexError), open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                running.add(pid)
    return running


def kill_all(pids):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def two_stacks(tmp_path_factory):
    stacks = []
    try:
        for name in ("first", "second"):
            stacks.append(DevRun(tmp_path_factory.mktemp("devrun") / name))
        yield stacks
    finally:
        for stack in stacks:
            stack.stop()


def create_link_and_token(stack, slug):
    token = stack.flask("tokens", "create", "laptop")
    assert token.returncode == 0, token.stderr
    link = stack.flask("links", "create", "https://example.com/" + slug, "--slug", slug)
    assert link.returncode == 0, link.stderr
    return token.stdout.strip().splitlines()[-1]


def test_the_flask_cli_beside_make_run_creates_a_token_and_a_link(two_stacks):
    stack = two_stacks[0]
    token = create_link_and_token(stack, "from-cli")
    answer = requests.get(
        f"{stack.url}/api/links/from-cli", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert answer.status_code == 200, "the CLI's token and link are the server's"
    assert answer.json()["url"] == "https://example.com/from-cli"


def test_two_checkouts_run_side_by_side_each_with_a_private_redis(two_stacks):
    urls = {
        json.loads((stack.instance / "devrun.json").read_text())["settings"]["REDIS_URL"]
        for stack in two_stacks
    }
    assert len(urls) == 2
    assert all(url.startswith("unix://") for url in urls)


def test_two_checkouts_side_by_side_each_count_their_own_clicks_exactly(two_stacks):
    sent = {}
    for stack, count in zip(two_stacks, (40, 25), strict=True):
        token = create_link_and_token(stack, "side-by-side")
        for _ in range(count):
            assert (
                requests.get(f"{stack.url}/r/side-by-side", allow_redirects=False, timeout=5).status_code
                == 302
            )
        sent[stack] = (token, count)

    def clicks(stack):
        headers = {"Authorization": f"Bearer {sent[stack][0]}"}
        return requests.get(f"{stack.url}/api/links/side-by-side", headers=headers, timeout=5).json()[
            "clicks"
        ]

    for stack in two_stacks:
        wait_for(
            lambda stack=stack: clicks(stack) == sent[stack][1], timeout=60, message="every click counted"
        )
    for stack in two_stacks:
        metrics = requests.get(f"{stack.url}/metrics", timeout=5).text
        assert "clickboard_clicks_dead_lettered_total 0.0" in metrics
        assert clicks(stack) == sent[stack][1]


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGKILL], ids=["SIGHUP", "SIGKILL"])
def test_nothing_outlives_a_killed_make_run(tmp_path, signum):
    stack = DevRun(tmp_path / "instance")
    try:
        started = stack.started_processes()
        names = {pathlib.Path(f"/proc/{pid}/cmdline").read_bytes() for pid in started}
        assert any(b"gunicorn" in name for name in names) and any(b"redis-server" in name for name in names)
        assert len(started) >= 5, "redis, gunicorn and its worker, the worker and its pool, beat"
        stack.process.send_signal(signum)
        stack.process.wait(30)
        wait_for(lambda: not alive(started), timeout=30, message=f"every process gone: {alive(started)}")
    finally:
        stack.stop()


def test_a_make_run_that_died_leaves_a_one_line_error_for_the_cli(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    settings = {"CLICKBOARD_DEV": "1", "REDIS_URL": f"unix://{instance}/redis/redis.sock?db=0"}
    (instance / "devrun.json").write_text(json.dumps({"pid": int(dead.stdout), "settings": settings}))
    result = run_flask(instance, "tokens", "create", "laptop")
    assert result.returncode != 0
    assert "no longer running" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


ENTRY_POINTS = {
    "flask": ["flask", "tokens", "create", "laptop"],
    "gunicorn": ["gunicorn", "-c", "gunicorn.conf.py", "--bind", "127.0.0.1:0", "wsgi:app"],
    "celery": ["celery", "-A", "celery_worker", "worker", "--pool", "solo"],
}


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_a_missing_secret_key_outside_make_run_is_one_line_naming_it(tmp_path, entry_point):
    command = ENTRY_POINTS[entry_point]
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), command[0]), *command[1:]],
        cwd=PROJECT_ROOT,
        env=plain_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
    assert "Traceback" not in result.stderr


def drain_worker_main(stack):
    """The pid of the drain worker's main process (``celery ... worker -Q clicks``)."""
    for pid in alive(stack.started_processes()):
        with contextlib.suppress(OSError):
            argv = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"worker" in argv and b"clicks" in argv and os.getpid() != pid:
                parent = int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                parent_argv = pathlib.Path(f"/proc/{parent}/cmdline").read_bytes()
                if b"celery" not in parent_argv:  # the main process, not a pool child
                    return pid
    return None


def test_a_drain_worker_that_dies_is_started_again_and_counting_resumes(tmp_path):
    stack = DevRun(tmp_path / "instance")
    try:
        token = create_link_and_token(stack, "revived")
        dead = wait_for(lambda: drain_worker_main(stack), timeout=30, message="the drain worker")
        os.kill(dead, signal.SIGKILL)  # as a library bug or the OOM killer would
        wait_for(
            lambda: drain_worker_main(stack) not in (None, dead), 60, 0.5, "the drain worker started again"
        )

        for _ in range(30):
            assert requests.get(f"{stack.url}/r/revived", allow_redirects=False, timeout=5).status_code == 302
        headers = {"Authorization": f"Bearer {token}"}

        def clicks():
            return requests.get(f"{stack.url}/api/links/revived", headers=headers, timeout=5).json()["clicks"]

        wait_for(lambda: clicks() == 30, timeout=60, message="the clicks counted by the new drain worker")
        assert "starting drain again" in stack.log_path.read_text()
    finally:
        stack.stop()

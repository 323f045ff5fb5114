"""deploy/nginx.conf for tests: read it, run it as a real nginx, and attack it slowly.

``parse`` reads the nginx configuration language (enough of it for our
file: directives, blocks, quotes, comments) into ``Directive`` trees, which
the deployment tests inspect and ``render`` turns into a config nginx runs
here: the same directives, with the upstream, port and file paths of a test.
``SlowClient`` is a slowloris: it sends a request's header a byte at a time
and never finishes it.
"""

import contextlib
import os
import re
import shutil
import socket
import threading
from dataclasses import dataclass, field

from tests.processes import ManagedProcess, free_port, wait_for
from webapp import PROJECT_ROOT

CONFIG = os.path.join(PROJECT_ROOT, "deploy", "nginx.conf")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TOKEN = re.compile(r"""#[^\n]*|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[{};]|[^\s{};"']+""")


def missing_reason():
    """Why the nginx tests cannot run here, or None."""
    if not os.access(NGINX, os.X_OK):
        return f"nginx not found (apt-get install nginx); looked for {NGINX}"
    return None


@dataclass
class Directive:
    name: str
    args: list
    block: list | None = field(default=None)

    def find(self, name):
        return find(self.block or [], name)


def parse(text):
    """The directives of an nginx configuration, blocks nested."""
    tokens = [token for token in TOKEN.findall(text) if not token.startswith("#")]
    directives, rest = parse_block(tokens, 0)
    if rest != len(tokens):
        raise ValueError("unbalanced '}' in the nginx configuration")
    return directives


def parse_block(tokens, start):
    directives, words, index = [], [], start
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "}":
            return directives, index - 1
        if token == ";":
            directives.append(Directive(words[0], words[1:]))
            words = []
        elif token == "{":
            block, index = parse_block(tokens, index)
            if index >= len(tokens):
                raise ValueError(f"unclosed block {words}")
            directives.append(Directive(words[0], words[1:], block))
            words, index = [], index + 1
        else:
            words.append(token)
    if words:
        raise ValueError(f"directive without ';': {words}")
    return directives, index


def find(directives, name):
    return [directive for directive in directives if directive.name == name]


def only(directives, name):
    (directive,) = find(directives, name)
    return directive


def serialize(directives, depth=0):
    lines = []
    for directive in directives:
        head = "    " * depth + " ".join([directive.name, *directive.args])
        if directive.block is None:
            lines.append(head + ";")
        else:
            lines += [head + " {", serialize(directive.block, depth + 1), "    " * depth + "}"]
    return "\n".join(lines)


def load():
    with open(CONFIG) as file:
        return parse(file.read())


def render(directory, listen_port, upstream):
    """deploy/nginx.conf as a test runs it: in the foreground, its files in ``directory``.

    Only where it listens, what it proxies to and where it keeps files
    change; each of those directives must be there, so a config that
    drops one fails here rather than being run half-changed.
    """
    config = load()
    config = [directive for directive in config if directive.name not in ("user", "daemon")]
    if os.geteuid() == 0:  # the image's user does not exist here; root's workers can read our files
        config.insert(0, Directive("user", ["root"]))
    config.insert(0, Directive("daemon", ["off"]))
    only(config, "pid").args = [os.path.join(directory, "nginx.pid")]
    only(config, "error_log").args = [os.path.join(directory, "error.log"), "info"]
    http = only(config, "http")
    only(http.block, "access_log").args = [os.path.join(directory, "access.log")]
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        http.block.insert(0, Directive(f"{temp}_temp_path", [os.path.join(directory, temp)]))
    only(only(http.block, "upstream").block, "server").args = [upstream]
    server = only(http.block, "server")
    only(server.block, "listen").args[0] = f"127.0.0.1:{listen_port}"
    (static,) = [location for location in server.find("location") if location.args == ["/static/"]]
    only(static.block, "alias").args = [os.path.join(PROJECT_ROOT, "static") + "/"]
    return serialize(config) + "\n"


class NginxServer(ManagedProcess):
    """nginx running deploy/nginx.conf in front of ``upstream`` (host:port), on a free port."""

    ATTEMPTS = 5

    def __init__(self, upstream, directory):
        self.upstream = upstream
        self.directory = str(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.config_path = os.path.join(self.directory, "nginx.conf")
        self.port = None
        command = [
            NGINX,
            "-c",
            self.config_path,
            "-p",
            self.directory,
            "-e",
            os.path.join(self.directory, "stderr.log"),
        ]
        super().__init__("nginx", command, os.environ.copy(), self.directory)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        # nginx binds its port itself: another process may take a free port first, so try a few.
        for _ in range(self.ATTEMPTS):
            self.port = free_port()
            with open(self.config_path, "w") as file:
                file.write(render(self.directory, self.port, self.upstream))
            super().start()
            if wait_for(self.listening_or_exited, timeout=20, message=f"nginx on {self.url}") == "listening":
                return self
            self.stop()
        raise AssertionError(f"nginx did not start:\n{self.log_text()[-3000:]}")

    def listening_or_exited(self):
        if not self.running:
            return "exited"
        with socket.socket() as probe:
            probe.settimeout(1)
            return "listening" if probe.connect_ex(("127.0.0.1", self.port)) == 0 else None


class SlowClient:
    """A slowloris: a request sent a byte at a time, never finished, until ``close()``.

    By default the header never ends; ``body=True`` sends a whole header
    announcing a large form, then the form a byte at a time (to a view
    that reads its form before answering, such as the login's CSRF check).
    """

    BODY_LENGTH = 1_000_000

    def __init__(self, host, port, path, body=False, interval=0.2):
        self.sock = socket.create_connection((host, port), timeout=10)
        if body:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {self.BODY_LENGTH}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n\r\n"
            )
            self.sock.sendall(head.encode())
            self.pending = b""
        else:
            self.pending = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode()
        self.interval = interval
        self.stopped = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self.drip, daemon=True)
        self.thread.start()

    @property
    def connected(self):
        return self.error is None and not self.stopped.is_set()

    def drip(self):
        sent = 0
        try:
            while not self.stopped.wait(self.interval):
                # The request's first bytes, then a header value or a body without end.
                self.sock.sendall(self.pending[sent : sent + 1] or b"a")
                sent += 1
        except OSError as exc:
            self.error = exc

    def close(self):
        self.stopped.set()
        self.thread.join(10)
        with contextlib.suppress(OSError):
            self.sock.close()

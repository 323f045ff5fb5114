"""gunicorn settings, each overridable from the environment."""

import multiprocessing
import os

bind = os.environ.get(
    "GUNICORN_BIND", f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
)
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "10"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# A worker is replaced after this many requests (jittered, so they are not all replaced
# at once): whatever a long-lived process accumulates, it cannot accumulate for ever.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "50000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "5000"))
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None  # "-" logs requests to stdout
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Fork after loading the app: workers share its code pages. Connections are
# made lazily per worker, so nothing opened here crosses the fork.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") == "1"
# gunicorn's runtime control socket lives at one path per user, shared by every
# gunicorn that user runs; Clickboard does not use it, so tests, benchmarks and
# several deployments on one host must not fight over it.
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "0") != "1"

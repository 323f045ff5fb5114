"""Celery bound to the Flask app: the pattern from Flask's own Celery example.

Every task runs inside an app context, so tasks use ``current_app``, ``db``
and the Redis clients exactly as views do.
"""

from fnmatch import fnmatchcase

from celery import Celery, Task
from flask import Flask, current_app

from webapp.broker import use_resilient_redis_transport
from webapp.config import ConfigError

CELERY = "celery"


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    use_resilient_redis_transport()  # see webapp.broker: workers must outlive Redis
    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    # Imported by name so a worker registers every task module in tasks/.
    celery_app.autodiscover_tasks(["tasks"], related_name=None, force=True)
    check_task_names(set(celery_app.tasks), app.config["CELERY"])
    app.extensions[CELERY] = celery_app
    return celery_app


def check_task_names(registered, celery_config):
    """Every task the Celery settings name (routes, limits, the beat schedule) is registered.

    Those settings spell tasks by name; a renamed task must stop the app when it
    starts, not leave beat sending a task no worker knows, or a task without its
    time limits.
    """
    named = {
        *celery_config["task_annotations"],
        *(e["task"] for e in celery_config["beat_schedule"].values()),
    }
    unknown = sorted(named - registered)
    unknown += sorted(
        p for p in celery_config["task_routes"] if not any(fnmatchcase(n, p) for n in registered)
    )
    if unknown:
        raise ConfigError(f"the Celery settings name tasks that do not exist: {', '.join(unknown)}")


def celery_of(app=None):
    """The Celery app bound to ``app`` (the current Flask app by default)."""
    return (app or current_app).extensions[CELERY]

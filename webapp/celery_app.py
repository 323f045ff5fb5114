"""Celery bound to the Flask app: the pattern from Flask's own Celery example.

Every task runs inside an app context, so tasks use ``current_app``, ``db``
and the Redis clients exactly as views do.
"""

from celery import Celery, Task
from flask import Flask, current_app

from webapp.broker import use_resilient_redis_transport

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
    app.extensions[CELERY] = celery_app
    return celery_app


def celery_of(app=None):
    """The Celery app bound to ``app`` (the current Flask app by default)."""
    return (app or current_app).extensions[CELERY]

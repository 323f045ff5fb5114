"""The Celery settings name tasks by their import path; each name must be a registered task."""

import pytest

from webapp.celery_app import celery_of, check_task_names
from webapp.config import ConfigError


def test_every_task_the_settings_name_is_registered(app):
    check_task_names(set(celery_of(app).tasks), app.config["CELERY"])  # raises otherwise


@pytest.mark.parametrize(
    "setting, change",
    [
        (
            "beat_schedule",
            lambda cfg: cfg["beat_schedule"]["drain-click-buffer"].update(task="tasks.clicks.drain"),
        ),
        ("task_annotations", lambda cfg: cfg["task_annotations"].update({"tasks.links.gone": {}})),
        ("task_routes", lambda cfg: cfg["task_routes"].update({"tasks.renamed.*": {"queue": "default"}})),
    ],
)
def test_a_renamed_task_stops_the_app_at_start(app, setting, change):
    settings = {
        name: dict(value) if isinstance(value, dict) else value
        for name, value in app.config["CELERY"].items()
    }
    settings["beat_schedule"] = {name: dict(entry) for name, entry in settings["beat_schedule"].items()}
    change(settings)
    with pytest.raises(ConfigError, match="name tasks that do not exist: tasks\\."):
        check_task_names(set(celery_of(app).tasks), settings)

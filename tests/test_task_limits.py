"""No task may hold a worker for ever, and the drain has a worker of its own."""

import os

from webapp import PROJECT_ROOT
from webapp.celery_app import celery_of


def test_every_task_has_a_soft_and_a_hard_time_limit_under_the_visibility_timeout(app):
    celery_app = celery_of(app)
    celery_app.loader.import_default_modules()
    ours = {name: task for name, task in celery_app.tasks.items() if name.startswith("tasks.")}
    assert len(ours) >= 11
    visibility = app.config["CELERY"]["broker_transport_options"]["visibility_timeout"]
    for name, task in ours.items():
        assert task.soft_time_limit and task.time_limit, f"{name} has no time limit"
        assert task.soft_time_limit < task.time_limit < visibility, name


def test_the_link_check_limit_leaves_room_for_its_own_deadline(app):
    task = celery_of(app).tasks["tasks.links.check_link_target"]
    assert task.soft_time_limit > app.config["LINK_CHECK_TIMEOUT"]


def test_make_run_drains_clicks_in_a_worker_that_runs_nothing_else():
    with open(os.path.join(PROJECT_ROOT, "Procfile")) as procfile:
        commands = dict(line.split(": ", 1) for line in procfile.read().splitlines() if line.strip())
    queues = {
        name: command.split(" -Q ")[1].split()[0].split(",")
        for name, command in commands.items()
        if " -Q " in command
    }
    assert queues["drain"] == ["clicks"]
    assert "clicks" not in queues["worker"]

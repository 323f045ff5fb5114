"""docker-compose.yml, the Dockerfile and .env.example, checked without a Docker engine.

No engine runs where the tests run, so the compose file is validated for
what would break a `docker compose up`: its structure, that every command
names a module, queue or CLI command that exists, that services depend on
services that exist, and that every setting it or the code reads is
documented in .env.example.
"""

import os
import re
import shlex

import pytest
import yaml

from webapp import PROJECT_ROOT
from webapp.config import TASK_QUEUES

APP_SERVICES = ("migrate", "web", "worker-clicks", "worker-reports", "beat")
# Variables set by the platform or by a service image, not by Clickboard's users.
NOT_CLICKBOARD_SETTINGS = {"PATH", "HOME"}


def read(name):
    with open(os.path.join(PROJECT_ROOT, name)) as file:
        return file.read()


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(read("docker-compose.yml"))


def documented_settings():
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", read(".env.example"), re.MULTILINE))


def command_words(service):
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else command


def test_compose_defines_the_production_stack(compose):
    expected = {"redis", "postgres", *APP_SERVICES}
    assert expected <= set(compose["services"])


def test_every_dependency_names_a_defined_service(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"


def test_stateful_services_and_web_have_healthchecks(compose):
    for name in ("redis", "postgres", "web"):
        assert "test" in compose["services"][name]["healthcheck"], name


def test_app_services_wait_for_the_migration(compose):
    for name in ("web", "worker-clicks", "worker-reports", "beat"):
        depends = compose["services"][name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_web_command_is_gunicorn_with_our_config_and_entry_point(compose):
    words = command_words(compose["services"]["web"])
    assert words[0] == "gunicorn"
    assert os.path.exists(os.path.join(PROJECT_ROOT, words[words.index("-c") + 1]))
    module, attribute = words[-1].split(":")
    assert os.path.exists(os.path.join(PROJECT_ROOT, f"{module}.py"))
    assert f"\n{attribute} = " in read(f"{module}.py")


@pytest.mark.parametrize("name", ["worker-clicks", "worker-reports", "beat"])
def test_celery_commands_use_our_entry_point(compose, name):
    words = command_words(compose["services"][name])
    assert words[:3] == ["celery", "-A", "celery_worker"]
    assert os.path.exists(os.path.join(PROJECT_ROOT, "celery_worker.py"))


@pytest.mark.parametrize("name", ["worker-clicks", "worker-reports"])
def test_workers_consume_only_declared_queues(compose, name):
    words = command_words(compose["services"][name])
    queues = words[words.index("-Q") + 1].split(",")
    assert set(queues) <= set(TASK_QUEUES), queues


def test_every_queue_has_a_worker_in_compose(compose):
    consumed = set()
    for name in ("worker-clicks", "worker-reports"):
        words = command_words(compose["services"][name])
        consumed.update(words[words.index("-Q") + 1].split(","))
    assert consumed == set(TASK_QUEUES)


def test_there_is_exactly_one_beat(compose):
    beats = [name for name, service in compose["services"].items() if "beat" in command_words(service)[:4]]
    assert beats == ["beat"]


def test_migrate_runs_existing_flask_commands(compose, runner):
    script = " ".join(command_words(compose["services"]["migrate"]))
    for command in re.findall(r"flask ([a-z-]+(?: [a-z-]+)?)", script):
        result = runner.invoke(args=[*command.split(), "--help"])
        assert result.exit_code == 0, f"flask {command}: {result.output}"


def test_every_variable_compose_reads_is_documented(compose):
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", read("docker-compose.yml")))
    for name in APP_SERVICES:
        used.update(compose["services"][name]["environment"])
    missing = used - documented_settings() - NOT_CLICKBOARD_SETTINGS
    assert not missing, f"not in .env.example: {sorted(missing)}"


def test_every_setting_the_code_reads_is_documented():
    code = (
        read("webapp/config.py")
        + read("gunicorn.conf.py")
        + read("webapp/devrun.py")
        + read("webapp/__init__.py")
    )
    read_by_code = set(
        re.findall(
            r'(?:text|number|comma_list|environ\.get|environ\.setdefault)\(\s*"([A-Z][A-Z0-9_]+)"', code
        )
    )
    assert read_by_code, "the pattern no longer finds how settings are read"
    missing = read_by_code - documented_settings() - {"CLICKBOARD_DEV"}
    assert not missing, f"not in .env.example: {sorted(missing)}"


def test_dockerfile_installs_the_pinned_requirements_and_runs_gunicorn():
    dockerfile = read("Dockerfile")
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
    assert re.search(r'CMD \["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"\]', dockerfile)
    assert "USER clickboard" in dockerfile

"""docker-compose.yml, the Dockerfile, deploy/nginx.conf and .env.example, checked without a Docker engine.

No engine runs where the tests run, so the compose file is validated for
what would break a `docker compose up`: its structure, that every command
names a module, queue or CLI command that exists, that services depend on
services that exist, that only the reverse proxy faces clients and its
config buffers them, and that every setting it or the code reads is
documented in .env.example. tests/test_reverse_proxy.py runs the nginx
config for real.
"""

import ipaddress
import os
import re
import shlex

import pytest
import yaml

from tests import nginx
from webapp import PROJECT_ROOT
from webapp.config import TASK_QUEUES
from webapp.factory import ClickboardRequest

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
    expected = {"redis", "postgres", "nginx", *APP_SERVICES}
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


# --- the reverse proxy ------------------------------------------------------

NGINX_CONFIG_IN_IMAGE = "/etc/nginx/nginx.conf"
# Slow clients wait at most this long in nginx before it drops them.
SHORT_TIMEOUT_SECONDS = 30
NGINX_SIZE = re.compile(r"(\d+)([kKmM]?)")


@pytest.fixture(scope="module")
def nginx_config():
    return nginx.load()


@pytest.fixture(scope="module")
def http(nginx_config):
    return nginx.only(nginx_config, "http").block


@pytest.fixture(scope="module")
def server(http):
    return nginx.only(http, "server").block


def directive(block, name):
    """The arguments of the one ``name`` directive in ``block``, joined by spaces."""
    return " ".join(nginx.only(block, name).args)


def default_of(value):
    """``${A:-${B:-x}}`` → x: what compose substitutes with nothing set."""
    match = re.fullmatch(r"(?:\$\{[A-Z_]+:-)+([^$}]*)\}+", value)
    assert match, f"not a variable with a default: {value}"
    return match.group(1)


def seconds(value):
    match = re.fullmatch(r"(\d+)(s?)", value)
    assert match, f"not a time in seconds: {value}"
    return int(match.group(1))


def size_in_bytes(value):
    number, unit = NGINX_SIZE.fullmatch(value).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit.lower()]


def web_port_in_the_image():
    return int(re.search(r"\bPORT=(\d+)", read("Dockerfile")).group(1))


def test_only_the_reverse_proxy_publishes_a_port(compose):
    publishing = [name for name, service in compose["services"].items() if service.get("ports")]
    assert publishing == ["nginx"]


def test_nginx_publishes_the_port_it_listens_on(compose, server):
    (mapping,) = compose["services"]["nginx"]["ports"]
    published, container = mapping.rsplit(":", 1)
    assert default_of(published) == "8000"  # where README and make run say Clickboard answers
    assert container == directive(server, "listen").split()[0]


def test_nginx_starts_after_a_healthy_web(compose):
    assert compose["services"]["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_nginx_runs_the_repository_config_and_static_files(compose, server):
    mounts = dict(volume.rsplit(":", 2)[:2][::-1] for volume in compose["services"]["nginx"]["volumes"])
    config = mounts[NGINX_CONFIG_IN_IMAGE]
    assert os.path.samefile(os.path.join(PROJECT_ROOT, config), nginx.CONFIG)
    (static,) = [block for block in nginx.find(server, "location") if block.args == ["/static/"]]
    alias = directive(static.block, "alias").rstrip("/")
    assert os.path.samefile(os.path.join(PROJECT_ROOT, mounts[alias]), os.path.join(PROJECT_ROOT, "static"))


def test_nginx_proxies_everything_else_to_the_web_service(compose, http, server):
    (root,) = [block for block in nginx.find(server, "location") if block.args == ["/"]]
    upstream_name = directive(root.block, "proxy_pass").removeprefix("http://")
    (upstream,) = [block for block in nginx.find(http, "upstream") if block.args == [upstream_name]]
    host, port = directive(upstream.block, "server").split(":")
    assert host == "web"
    assert int(port) == web_port_in_the_image()
    assert str(port) in compose["services"]["web"]["expose"]


def test_nginx_and_web_share_a_network(compose):
    services = compose["services"]
    assert set(services["nginx"]["networks"]) & set(services["web"]["networks"])


def test_web_trusts_the_proxy_network_and_nothing_wider(compose):
    subnet = default_of(compose["networks"]["proxy"]["ipam"]["config"][0]["subnet"])
    trusted = default_of(compose["services"]["web"]["environment"]["TRUSTED_PROXIES"])
    assert trusted == subnet
    assert compose["services"]["nginx"]["networks"] == ["proxy"]
    assert ipaddress.ip_network(subnet).num_addresses <= 256


def test_nginx_buffers_requests_and_answers(http):
    assert directive(http, "proxy_request_buffering") == "on"
    assert directive(http, "proxy_buffering") == "on"


@pytest.mark.parametrize(
    "name", ["client_header_timeout", "client_body_timeout", "keepalive_timeout", "send_timeout"]
)
def test_nginx_drops_slow_clients_soon(http, name):
    assert 0 < seconds(directive(http, name)) <= SHORT_TIMEOUT_SECONDS


def test_nginx_takes_the_largest_body_the_app_takes_and_no_more(http):
    largest = max(ClickboardRequest.BODY_LIMITS.values())
    assert size_in_bytes(directive(http, "client_max_body_size")) == largest


def test_nginx_forwards_the_client_address_scheme_and_host(server):
    (root,) = [block for block in nginx.find(server, "location") if block.args == ["/"]]
    headers = {header.args[0]: header.args[1] for header in nginx.find(root.block, "proxy_set_header")}
    # Appended, never replaced: the app walks the list from the right past TRUSTED_PROXIES.
    assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["Host"] == "$http_host"  # with its port: short URLs are built from it
    assert headers["X-Forwarded-Host"] == "$host"


def test_nginx_config_parses_back_to_itself(nginx_config):
    assert nginx.parse(nginx.serialize(nginx_config)) == nginx_config

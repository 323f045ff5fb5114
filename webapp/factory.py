"""``create_app`` builds the Clickboard app: config, extensions, blueprints, commands."""

import os
import sys

from flask import Flask, Request, current_app, render_template, send_from_directory
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import SecurityError

from webapp import (
    PROJECT_ROOT,
    cli,
    collect,
    dashboard,
    devstate,
    health,
    pageviews,
    redirects,
    redis_client,
    security_headers,
    templating,
)
from webapp.api import bp as api_bp
from webapp.auth import views as auth_views
from webapp.celery_app import celery_init_app
from webapp.clicks import setup as clicks_setup
from webapp.config import ConfigError, finish_config, instance_path, load_config
from webapp.dashboard.fragment_door import FragmentDoor
from webapp.extensions import csrf, db, htmx, login_manager, migrate
from webapp.links.importer import MAX_BYTES as IMPORT_MAX_BYTES
from webapp.reports import views as report_views
from webapp.sessions import DashboardSessionInterface


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that a document nested too deeply to parse is invalid JSON.

    ``json.loads`` raises RecursionError on ``[[[[...`` a few thousand deep,
    which ``request.get_json`` does not catch: a tiny body would be a 500.
    """

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


class ClickboardRequest(Request):
    """Bodies are capped at ``MAX_CONTENT_LENGTH``, except where an endpoint needs another cap:
    the upload of a file to import (larger), a tracked page view (smaller).

    The cap must be known before the body is read, which Flask-WTF's CSRF
    check does ahead of the view; the endpoint is matched by then.
    """

    BODY_LIMITS = {
        "dashboard.import_preview": IMPORT_MAX_BYTES + 64 * 1024,  # the file and the form around it
        "collect.collect": collect.MAX_BODY,  # one page view from anyone: small
    }

    @property
    def max_content_length(self):
        return self.BODY_LIMITS.get(self.endpoint) or super().max_content_length


def create_app(test_config=None):
    instance = instance_path()
    app = Flask(
        "webapp",
        instance_path=instance,
        template_folder=os.path.join(PROJECT_ROOT, "templates"),
        static_folder=os.path.join(PROJECT_ROOT, "static"),
    )
    app.request_class = ClickboardRequest
    app.json = JSONProvider(app)
    app.session_interface = DashboardSessionInterface()
    app.config.update(load_config(devstate.environment_beside(instance, os.environ)))
    if test_config:
        app.config.update(test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    finish_config(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    # Two doors before Flask, each for the hits it can answer alone: redirects, then polls.
    app.wsgi_app = redirects.CachedRedirects(app, FragmentDoor(app, app.wsgi_app))
    return app


def create_app_or_exit():
    """``create_app`` for entry points: a missing or wrong setting ends the process with one line."""
    try:
        return create_app()
    except ConfigError as error:
        sys.exit(f"Error: {error.message}")


def register_extensions(app):
    db.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    templating.init_app(app)
    security_headers.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(PROJECT_ROOT, "migrations"))
    redis_client.init_app(app)
    clicks_setup.init_app(app)
    pageviews.init_app(app)
    celery_init_app(app)


def register_blueprints(app):
    app.register_blueprint(redirects.bp)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)  # bearer tokens, not cookies: nothing for CSRF to forge
    app.register_blueprint(health.bp)
    app.register_blueprint(collect.bp)
    csrf.exempt(collect.bp)  # public and cookie-free: the Origin check is its defence
    app.register_blueprint(auth_views.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(report_views.bp)
    app.add_url_rule("/favicon.ico", "favicon", favicon)


def favicon():
    """Browsers ask for /favicon.ico whatever the page links: answer with the SVG icon."""
    return send_from_directory(
        current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400
    )


def register_errorhandlers(app):
    def render_error(error):
        code = getattr(error, "code", 500)
        page = render_template(
            "error.html",
            code=code,
            name=getattr(error, "name", "Error"),
            description=getattr(error, "description", ""),
        )
        return page, code

    for code in (400, 401, 403, 404, 405, 413, 429, 500):
        app.errorhandler(code)(render_error)
    app.errorhandler(SecurityError)(untrusted_host)


def untrusted_host(error):
    """A Host outside TRUSTED_HOSTS: no URL can be built for it, so no page in the layout."""
    return (
        "400 Bad Request: this server does not answer for that host name.\n",
        400,
        {"Content-Type": "text/plain"},
    )


def register_commands(app):
    cli.init_app(app)

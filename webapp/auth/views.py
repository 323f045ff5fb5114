"""Log in and out of the dashboard. Failed logins are throttled (``webapp.auth.throttle``)."""

from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from htmx_flask import make_response as htmx_response
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from webapp.auth import throttle
from webapp.auth.users import adopt_browser_time_zone, authenticate
from webapp.client_address import client_ip, trusted_proxies
from webapp.extensions import db, login_manager
from webapp.models import User

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


@login_manager.user_loader
def load_user(session_id):
    """The user of a session id ``<user id>:<session epoch>`` (``User.get_id``), if still valid."""
    parts = User.session_id_parts(session_id)
    if parts is None:
        return None  # log in again
    user_id, epoch = parts
    user = db.session.get(User, user_id)
    return user if user is not None and user.session_epoch == epoch else None


@login_manager.unauthorized_handler
def unauthorized():
    """To the login page; an htmx poll gets a 401 that makes the whole page go there."""
    if request.htmx:
        return htmx_response("", 401, redirect=url_for("auth.login"))
    return redirect(
        url_for("auth.login", next=request.full_path.rstrip("?") if request.method == "GET" else None)
    )


def safe_next(target):
    """Only paths on this site: ``?next=https://evil.example`` must not redirect away."""
    if not target or urlsplit(target).netloc or urlsplit(target).scheme or not target.startswith("/"):
        return url_for("dashboard.index")
    return target if not target.startswith("//") else url_for("dashboard.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    form = LoginForm()
    if form.validate_on_submit():
        keys = throttle.keys_for(form.email.data, login_address())
        verdict = throttle.try_login(keys)
        if not verdict.allowed:
            page = render_template("auth/login.html", form=form, retry_after=verdict.retry_after)
            return page, 429, {"Retry-After": str(verdict.retry_after)}
        user = authenticate(form.email.data, form.password.data)
        if user is not None:
            throttle.record_success(keys)
            login_user(user)
            adopt_browser_time_zone(user, request.form.get("tz", ""))
            return redirect(safe_next(request.args.get("next")))
        throttle.record_failure(keys)
        # On the form, tied to both fields (which one was wrong is not said).
        return render_template("auth/login.html", form=form, error="Wrong email or password."), 401
    return render_template("auth/login.html", form=form)


def login_address():
    """The client's address, read through trusted proxies: else all would share the proxy's count."""
    trusted = trusted_proxies()
    return client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), trusted)


@bp.post("/logout")
@login_required
def logout():
    # Forgetting this browser's cookie is not enough: a copy of it would still
    # be valid. Ending the user's sessions everywhere is what makes it so.
    current_user.end_sessions()
    db.session.commit()
    logout_user()
    return redirect(url_for("auth.login"))

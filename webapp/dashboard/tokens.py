"""API tokens in the dashboard: list, create (shown once), revoke."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.auth.tokens import issue_token, revoke_token
from webapp.dashboard import bp
from webapp.extensions import db
from webapp.models import ApiToken

NAME_MAX_LENGTH = 100


@bp.get("/tokens")
def tokens_page():
    return render_template("dashboard/tokens.html", tokens=own_tokens(), new_token=None, error=None)


@bp.post("/tokens")
def create_token():
    name = request.form.get("name", "").strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        error = f"Give the token a name of 1 to {NAME_MAX_LENGTH} characters."
        return render_template("dashboard/tokens.html", tokens=own_tokens(), new_token=None, error=error), 400
    _, plaintext = issue_token(current_user, name)
    # Rendered, not redirected: the token exists in plain text only in this response.
    page = render_template("dashboard/tokens.html", tokens=own_tokens(), new_token=plaintext, error=None)
    return page, 201, {"Cache-Control": "no-store"}


@bp.post("/tokens/<int:token_id>/revoke")
def revoke(token_id):
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != current_user.id:
        abort(404)
    revoke_token(token)
    flash(f"Revoked token {token.name}.", "ok")
    return redirect(url_for("dashboard.tokens_page"), 303)


def own_tokens():
    query = db.select(ApiToken).where(ApiToken.user_id == current_user.id).order_by(ApiToken.id.desc())
    return db.session.execute(query).scalars().all()

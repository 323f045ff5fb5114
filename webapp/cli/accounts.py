"""flask users create / flask tokens create|list|revoke."""

import click
from flask.cli import with_appcontext

from webapp.auth.tokens import issue_token, revoke_token
from webapp.auth.users import InvalidUser, create_user, find_user
from webapp.extensions import db
from webapp.models import ApiToken, User


@click.group(help="Manage dashboard users.")
def users():
    pass


@users.command("create")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--admin", is_flag=True, help="Can see every user's links.")
@with_appcontext
def create_user_command(email, password, admin):
    """Create a user who can log in to the dashboard."""
    try:
        user = create_user(email, password, is_admin=admin)
    except InvalidUser as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created user {user.email}{' (admin)' if admin else ''}")


@click.group(help="Manage API tokens.")
def tokens():
    pass


@tokens.command("create")
@click.argument("name")
@click.option("--user", "email", help="Owner of the token (default: the first admin).")
@with_appcontext
def create_token_command(name, email):
    """Create an API token and print it (it is shown only this once)."""
    user = find_user(email) if email else first_admin()
    if user is None:
        raise click.ClickException(
            f"no user {email}" if email else "no users yet: run `flask users create EMAIL --admin` first"
        )
    _, plaintext = issue_token(user, name)
    click.echo(plaintext)


@tokens.command("list")
@with_appcontext
def list_tokens_command():
    """List tokens (names and owners; the secrets are not stored)."""
    for token in db.session.execute(db.select(ApiToken).order_by(ApiToken.id)).scalars():
        state = "revoked" if token.revoked_at else "active"
        click.echo(f"{token.id}\t{token.name}\t{token.user.email}\t{state}")


@tokens.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
def revoke_token_command(token_id):
    """Revoke a token by the id `flask tokens list` shows."""
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise click.ClickException(f"no token with id {token_id}")
    revoke_token(token)
    click.echo(f"revoked token {token_id} ({token.name})")


def first_admin():
    query = db.select(User).where(User.is_admin.is_(True)).order_by(User.id).limit(1)
    return db.session.execute(query).scalar_one_or_none()

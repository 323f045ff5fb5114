"""flask links create|show and flask clicks drain."""

import json

import click
from flask.cli import with_appcontext

from webapp.api.links import link_json
from webapp.cli.accounts import first_admin
from webapp.links import service
from webapp.links.validation import InvalidLink


@click.group(help="Manage short links.")
def links():
    pass


@links.command("create")
@click.argument("url")
@click.option("--slug", help="Custom slug (default: a generated one).")
@with_appcontext
def create_link_command(url, slug):
    """Shorten URL and print the link as JSON."""
    try:
        link, _ = service.create_link(url, first_admin(), slug=slug)
    except (InvalidLink, service.SlugTaken) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(link_json(link), indent=2))


@links.command("show")
@click.argument("slug")
@with_appcontext
def show_link_command(slug):
    """Print a link and its click counts as JSON."""
    link = service.get_link(slug)
    if link is None:
        raise click.ClickException(f"no link with slug '{slug}'")
    click.echo(json.dumps(link_json(link), indent=2))


@click.group(help="The click pipeline.")
def clicks():
    pass


@clicks.command("drain")
@with_appcontext
def drain_command():
    """Drain the click buffer now, in this process (normally beat does this)."""
    from tasks.clicks import drain_click_buffer

    click.echo(f"recorded {drain_click_buffer.run()} clicks")


@clicks.command("ship-orphans")
@with_appcontext
def ship_orphans_command():
    """Ship click logs left by stopped processes into the buffer now."""
    from tasks.clicks import ship_orphaned_clicks

    click.echo(f"shipped {ship_orphaned_clicks.run()} clicks")

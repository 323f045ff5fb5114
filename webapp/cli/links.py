"""flask links create|edit|import|export|clicks|show|check and flask clicks drain|ship-orphans."""

import json

import click
from flask import current_app
from flask.cli import with_appcontext

from tasks.clicks import drain_click_buffer, ship_orphaned_clicks
from tasks.links import send_link_check
from webapp.cli.accounts import first_admin
from webapp.extensions import db
from webapp.links import export, importer, service
from webapp.links.representation import link_json
from webapp.links.validation import InvalidLink
from webapp.models import Link, User


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


@links.command("edit")
@click.argument("slug")
@click.option("--url", help="New target URL.")
@click.option("--slug", "new_slug", help="New slug (the old one keeps redirecting as an alias).")
@click.option("--title", help="Title ('' removes it).")
@click.option("--tags", help="Comma-separated tags, replacing the link's ('' removes them all).")
@click.option("--redirect-code", type=int, help="301, 302, 307 or 308.")
@click.option("--enabled/--disabled", default=None, help="Turn the link on or off.")
@click.option("--expires-at", help="ISO 8601 date-time (UTC unless it has an offset); '' for never.")
@click.option("--max-clicks", help="Click limit; '' for none.")
@with_appcontext
def edit_link_command(slug, new_slug, **options):
    """Change a link (its clicks stay; the change is recorded) and print it as JSON."""
    link = service.get_link(slug)
    if link is None:
        raise click.ClickException(f"no link with slug '{slug}'")
    fields = {name: value for name, value in {**options, "slug": new_slug}.items() if value is not None}
    if not fields:
        raise click.ClickException("say what to change: see --help")
    try:
        service.update_link(link, fields, None)
    except (InvalidLink, service.SlugTaken) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(link_json(link), indent=2))


@links.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--dry-run", is_flag=True, help="Check every row and show what would happen; write nothing.")
@click.option("--owner", metavar="EMAIL", help="Whose links they become (default: the first admin).")
@with_appcontext
def import_links_command(file, dry_run, owner):
    """Import a CSV export of YOURLS, Shlink, Kutt, Bitly or Clickboard (told by its header)."""
    user = (
        first_admin()
        if owner is None
        else db.session.execute(db.select(User).filter_by(email=owner)).scalar()
    )
    if owner is not None and user is None:
        raise click.ClickException(f"no user with email '{owner}'")
    try:
        plan = importer.plan_import(file.read(importer.MAX_BYTES + 1), user)
        for row in plan.errors:
            click.echo(f"line {row.line}: {row.error}", err=True)
        created = plan.count("new") if dry_run else importer.commit_import(plan, user)
    except importer.InvalidImport as exc:
        raise click.ClickException(str(exc)) from None
    verb = "would create" if dry_run else "created"
    click.echo(
        f"{plan.source.label} export, {len(plan.rows)} rows: {verb} {created}, "
        f"{plan.count('existing')} already here, {len(plan.errors)} with errors (skipped)"
    )


@links.command("export")
@click.option(
    "--format", "export_format", type=click.Choice(sorted(export.EXPORTS)), default="csv", show_default=True
)
@click.option("--output", type=click.File("w"), default="-", help="File to write (default: standard output).")
@with_appcontext
def export_links_command(export_format, output):
    """Every link with its counts, as CSV or JSON."""
    links = db.session.scalars(db.select(Link).order_by(Link.id)).all()
    for text in export.EXPORTS[export_format](links):
        output.write(text)


@links.command("clicks")
@click.argument("slug")
@click.option("--output", type=click.File("w"), default="-", help="File to write (default: standard output).")
@with_appcontext
def export_clicks_command(slug, output):
    """Every click of the link as CSV, oldest first, in constant memory however many."""
    link = service.get_link(slug)
    if link is None:
        raise click.ClickException(f"no link with slug '{slug}'")
    for text in export.clicks_csv(link.id):
        output.write(text)


@links.command("show")
@click.argument("slug")
@with_appcontext
def show_link_command(slug):
    """Print a link and its click counts as JSON."""
    link = service.get_link(slug)
    if link is None:
        raise click.ClickException(f"no link with slug '{slug}'")
    click.echo(json.dumps(link_json(link), indent=2))


@links.command("check")
@click.argument("slug")
@click.option("--host", help="Run the check on this host's workers (queue host.NAME; see HOST_QUEUES).")
@with_appcontext
def check_link_command(slug, host):
    """Enqueue a check of the link's target (status and title, shown on its page)."""
    link = service.get_link(slug)
    if link is None:
        raise click.ClickException(f"no link with slug '{slug}'")
    if host and host not in current_app.config["HOST_QUEUES"]:
        raise click.ClickException(f"unknown host '{host}': add it to HOST_QUEUES")
    result = send_link_check(link.id, host=host)
    click.echo(f"check of /r/{slug} enqueued as task {result.id}")


@click.group(help="The click pipeline.")
def clicks():
    pass


@clicks.command("drain")
@with_appcontext
def drain_command():
    """Drain the click buffer now, in this process (normally beat does this)."""
    click.echo(f"recorded {drain_click_buffer.run(follow=False)} clicks")


@clicks.command("ship-orphans")
@with_appcontext
def ship_orphans_command():
    """Ship click logs left by stopped processes into the buffer now."""
    click.echo(f"shipped {ship_orphaned_clicks.run()} clicks")

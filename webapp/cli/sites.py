"""flask sites create|list: sites for the page-view tracker."""

import click
from flask.cli import with_appcontext

from webapp import sites
from webapp.cli.accounts import first_admin
from webapp.extensions import db
from webapp.models import Site


@click.group("sites", help="Sites that send page views with the tracker script.")
def sites_group():
    pass


@sites_group.command("create")
@click.argument("name")
@click.option("--origin", "origins", multiple=True, required=True,
              help="Where the site's pages are served from, e.g. https://www.example.com (repeat for more).")  # fmt: skip
@with_appcontext
def create_site_command(name, origins):
    """Create a site; print its key and, last, the tag to embed in its pages."""
    try:
        site = sites.create_site(name, list(origins), first_admin())
    except sites.InvalidSite as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"site key: {site.public_key}")
    click.echo(f"origins: {', '.join(site.origins)}")
    click.echo(sites.snippet(site))


@sites_group.command("list")
@with_appcontext
def list_sites_command():
    """Every site: key, name, origins."""
    for site in db.session.scalars(db.select(Site).order_by(Site.id)):
        click.echo(f"{site.public_key}  {site.name}  {' '.join(site.origins)}")

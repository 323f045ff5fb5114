"""flask setup: first-run set-up used by `make run` (admin, demo data)."""

import random
import time

import click
from flask import current_app
from flask.cli import with_appcontext

from webapp.auth.tokens import issue_token
from webapp.auth.users import ensure_admin
from webapp.clicks.events import click_row, encode_click
from webapp.clicks.store import record_clicks
from webapp.extensions import db
from webapp.links import service
from webapp.models import Link, PageView
from webapp.pageviews import seed as pageview_seed

DEMO_LINKS = {
    "flask-docs": "https://flask.palletsprojects.com/en/stable/",
    "celery-docs": "https://docs.celeryq.dev/en/stable/",
    "htmx": "https://htmx.org/",
}
DEMO_PAGEVIEWS = 200_000
DEMO_REFERRERS = ["https://news.ycombinator.com/", "https://www.google.com/", "", "https://mastodon.social/"]
DEMO_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]


@click.command("setup")
@click.option("--demo/--no-demo", default=True, help="Add demo links and clicks to an empty database.")
@with_appcontext
def setup(demo):
    """Create the first admin (ADMIN_EMAIL/ADMIN_PASSWORD) and demo data if empty."""
    for line in run_setup(demo):
        click.echo(line)


def run_setup(demo):
    """First-run set-up; yields what to tell the user. Does nothing the second time."""
    cfg = current_app.config
    admin, generated = ensure_admin(cfg["ADMIN_EMAIL"], cfg["ADMIN_PASSWORD"])
    if generated:
        yield f"Created admin {admin.email} with password: {generated}"
        yield "  (shown once; set ADMIN_EMAIL / ADMIN_PASSWORD in .env to choose them)"
    if demo and db.session.execute(db.select(Link.id).limit(1)).first() is None:
        count = seed_demo(admin)
        _, token = issue_token(admin, "demo")
        yield f"Added {len(DEMO_LINKS)} demo links with {count} clicks, e.g. /r/htmx"
        yield f"API token for {admin.email} (shown once): {token}"
    if demo and db.session.execute(db.select(PageView.id).limit(1)).first() is None:
        inserted = pageview_seed.bulk_insert(db.engine, pageview_seed.generate(DEMO_PAGEVIEWS, 60, seed=1))
        yield f"Added {inserted:,} demo page views for the slow-pages report."


def seed_demo(owner, days=7, clicks_per_link=150, rng=None):
    rng = rng or random.Random(7)
    rows = []
    for slug, url in DEMO_LINKS.items():
        link, _ = service.create_link(url, owner, slug=slug)
        for _ in range(clicks_per_link):
            at = time.time() - rng.random() * days * 86400
            address = f"203.0.113.{rng.randrange(256)}"
            line = encode_click(
                link.id, "GET", rng.choice(DEMO_REFERRERS), rng.choice(DEMO_AGENTS), address, at
            )
            rows.append(click_row(line))
    with db.engine.begin() as conn:
        return record_clicks(conn, rows, check_duplicates=False)

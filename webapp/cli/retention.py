"""flask retention prune: the daily pruning, run now in this process."""

import json
import time

import click
from flask import current_app
from flask.cli import with_appcontext

from webapp import retention
from webapp.extensions import db


@click.group("retention", help="Raw click and page-view rows past RETENTION_DAYS.")
def retention_group():
    pass


@retention_group.command("prune")
@click.option(
    "--days",
    type=click.IntRange(0, 36500),
    help="Keep this many days instead of RETENTION_DAYS (0: keep all).",
)
@with_appcontext
def prune_command(days):
    """Prune now (what the daily task does) and print what went, as JSON."""
    cfg = current_app.config
    started = time.perf_counter()
    report = retention.prune(
        db.engine, cfg["RETENTION_DAYS"] if days is None else days, cfg["RETENTION_BATCH_SIZE"]
    )
    click.echo(json.dumps({"tables": report, "seconds": round(time.perf_counter() - started, 3)}))

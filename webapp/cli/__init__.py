"""``flask`` commands. Each module adds one group; ``init_app`` registers them all."""

from webapp.cli import accounts, links, reports, retention, setup, sites


def init_app(app):
    for group in (
        accounts.users,
        accounts.tokens,
        links.links,
        links.clicks,
        reports.seed,
        reports.report,
        retention.retention_group,
        setup.setup,
        sites.sites_group,
    ):
        app.cli.add_command(group)

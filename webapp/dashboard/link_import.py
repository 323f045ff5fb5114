"""Importing another shortener's CSV export in the dashboard: upload, preview, import.

The preview is the plan of ``links.importer`` (nothing written). The file is
kept in Redis for ``STAGED_SECONDS`` under a random token bound to the user,
so "Import" commits what was previewed without asking for the file again;
the commit plans it afresh, since the database may have changed meanwhile.
"""

import secrets

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from redis import RedisError

from webapp.dashboard import bp
from webapp.keys import app_key
from webapp.links import importer
from webapp.redis_client import worker_redis

STAGED_SECONDS = 30 * 60
PREVIEW_ROWS = 100
LISTED_ERRORS = 200


def staged_key(token):
    return app_key("import", str(current_user.id), token)


@bp.get("/links/import")
def import_page():
    return import_page_with()


@bp.post("/links/import")
def import_preview():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return import_error("Choose a CSV file to import.")
    data = upload.read(importer.MAX_BYTES + 1)
    try:
        plan = importer.plan_import(data, current_user)
    except importer.InvalidImport as exc:
        return import_error(str(exc))
    token = secrets.token_urlsafe(16)
    try:
        worker_redis().set(staged_key(token), data, ex=STAGED_SECONDS)
    except RedisError:
        return import_error(
            "The file could not be kept for the import (Redis is unreachable): try again.", 503
        )
    return import_page_with(
        plan=plan,
        token=token,
        preview_rows=plan.rows[:PREVIEW_ROWS],
        listed_errors=plan.errors[:LISTED_ERRORS],
    )


@bp.post("/links/import/commit")
def import_commit():
    key = staged_key(request.form.get("token", ""))
    try:
        data = worker_redis().get(key)
    except RedisError:
        return import_error(
            "The previewed file could not be read back (Redis is unreachable): try again.", 503
        )
    if data is None:
        return import_error("This preview has expired or was already imported: upload the file again.")
    data = data.encode()  # the client decodes replies; the preview checked the file is UTF-8
    try:
        plan = importer.plan_import(data, current_user)
        created = importer.commit_import(plan, current_user)
    except importer.InvalidImport as exc:
        return import_error(str(exc))
    worker_redis().delete(key)
    flash(
        f"Imported {created} links from the {plan.source.label} export; "
        f"{plan.count('existing')} were already here, {len(plan.errors)} rows were skipped.",
        "ok",
    )
    return redirect(url_for("dashboard.links_page"), 303)


def import_error(message, status=400):
    return import_page_with(error=message), status


def import_page_with(plan=None, error=None, **context):
    return render_template(
        "dashboard/link_import.html",
        plan=plan,
        error=error,
        max_rows=importer.MAX_ROWS,
        max_mb=importer.MAX_BYTES // (1024 * 1024),
        **context,
    )

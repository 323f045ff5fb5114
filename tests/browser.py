"""What the browser tests share: Debian's Chromium, launched the way this machine allows.

Playwright's own browser download does not work here, so the tests drive
``/usr/bin/chromium`` (``apt-get install chromium``) and skip, saying so,
where it or Playwright is missing.
"""

import os

from webapp import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = os.path.join(PROJECT_ROOT, "test-artifacts")


def missing_reason():
    """Why browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not importable; pip install -r requirements-dev.txt"
    if not os.path.exists(CHROMIUM):
        return f"Chromium not found at {CHROMIUM}; apt-get install chromium"
    return None


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

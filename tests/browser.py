"""What the browser tests share: Debian's Chromium, launched the way this machine allows.

Playwright's own browser download does not work here, so the tests drive
``/usr/bin/chromium`` (``apt-get install chromium``) and skip, saying so,
where it or Playwright is missing.
"""

import os

import pytest

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


@pytest.fixture(scope="module")
def browser():
    """One Chromium per browser-test module (imported into tests/conftest.py)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def artifacts():
    """``artifacts("name.png")``: a path in test-artifacts/, for screenshots."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    return lambda name: os.path.join(ARTIFACTS, name)

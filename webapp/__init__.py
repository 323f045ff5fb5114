"""Clickboard: short links and page-view analytics. ``create_app`` builds the app.

The package itself imports nothing heavy: ``create_app`` (and
``create_app_or_exit``, for entry points) live in ``webapp.factory`` and are
loaded on first use, so a process that needs one part (a click log writer,
the embedded Redis) does not load Flask and every blueprint first.
"""

import importlib
import os

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACTORY_NAMES = ("create_app", "create_app_or_exit")


def __getattr__(name):
    """``from webapp import create_app`` still works, loading the factory then."""
    if name in FACTORY_NAMES:
        return getattr(importlib.import_module("webapp.factory"), name)
    raise AttributeError(f"module 'webapp' has no attribute {name!r}")

"""Clickboard: short links and page-view analytics. ``create_app`` builds the app.

The package itself imports nothing heavy: ``create_app`` lives in
``webapp.factory`` and is loaded on first use, so a process that needs one
part (a click log writer, the embedded Redis) does not load Flask and every
blueprint first.
"""

import importlib
import os

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def __getattr__(name):
    """``from webapp import create_app`` still works, loading the factory then."""
    if name == "create_app":
        return importlib.import_module("webapp.factory").create_app
    raise AttributeError(f"module 'webapp' has no attribute {name!r}")

"""The Redis keys of one report's computation (result, markers, lock, progress, error).

Shared by the request side (``coordinator``) and the worker side (``runner``
and the report task), so neither imports the other for them.
"""

from webapp.keys import app_key

REPORT_NAME = "slow_pageviews"


class ReportKeys:
    def __init__(self, params):
        for name in ("result", "fresh", "sent", "working", "lock", "progress", "error"):
            setattr(self, name, app_key("report", REPORT_NAME, params.key, name))

"""The click pipeline: capture on the redirect, local log, Redis buffer, drain, store.

``webapp.clicks.setup`` gives an app its part; the package imports nothing,
so a process that only writes a click log loads the click log alone.
"""

"""Clickboard benchmarks: ``python -m bench`` (see bench/README.md).

Modules: ``stack`` starts and stops the processes, ``wrk`` runs and parses
wrk, ``redirect`` and ``drain`` are the two benchmarks, ``clicks`` holds the
click helpers they share, ``report`` prints the tables and writes the JSON,
``noop_app`` is the baseline Flask app, ``postgres`` the drain's scratch
PostgreSQL database (only with ``BENCH_DATABASE_URL``).
"""

"""Clickboard benchmarks: ``python -m bench`` (see bench/README.md).

Modules: ``stack`` starts and stops the processes, ``wrk`` runs and parses
wrk, ``redirect``, ``drain``, ``seed``, ``slowreport`` and ``fragments`` are
the benchmarks, ``clicks`` holds the click helpers they share, ``measure``
times a subprocess and reads its peak RSS, ``slowreport_child`` is the
process one report computation runs in, ``dashboard`` logs in and writes
wrk's Lua scripts, ``poller`` sends paced (open-loop) requests, ``report``
and ``tables`` print the tables and write the JSON, ``noop_app`` is the
baseline Flask app, ``postgres`` and ``rabbitmq`` find (by ``servers``' rule) the PostgreSQL
server, with its scratch database, and the RabbitMQ broker the bench also runs on.
"""

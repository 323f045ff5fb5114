"""The baseline: a Flask app whose ``/r/<slug>`` redirects with no I/O at all.

Served by the same gunicorn settings as Clickboard, it measures what Flask,
gunicorn and wrk cost on this machine, so Clickboard's figures can be read
as a ratio to it. ``/`` answers 200 because that is what
``tests.processes.WebServer`` polls to know the server is up.
"""

from flask import Flask, redirect

app = Flask(__name__)


@app.get("/")
def index():
    return "ok"


@app.route("/r/<slug>", methods=["GET", "HEAD"])
def follow_link(slug):
    return redirect("https://example.com/", 302)

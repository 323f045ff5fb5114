"""Celery entry point: ``celery -A celery_worker worker|beat``."""

from dotenv import load_dotenv

from webapp import create_app_or_exit
from webapp.celery_app import celery_of
from webapp.ops import connect_worker_signals

load_dotenv()  # a .env beside the code, if any; real environment variables win

flask_app = create_app_or_exit()
celery_app = celery_of(flask_app)
connect_worker_signals(flask_app)  # heartbeats and failures for the ops panel

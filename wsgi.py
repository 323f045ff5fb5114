"""gunicorn entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

from dotenv import load_dotenv

from webapp import create_app_or_exit

load_dotenv()  # a .env beside the code, if any; real environment variables win

app = create_app_or_exit()

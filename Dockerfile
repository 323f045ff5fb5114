# One image for every Clickboard process; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLASK_APP=webapp \
    CLICKBOARD_INSTANCE_PATH=/var/lib/clickboard \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
RUN useradd --system --home /app clickboard \
    && mkdir -p /var/lib/clickboard \
    && chown clickboard /var/lib/clickboard
USER clickboard

EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]

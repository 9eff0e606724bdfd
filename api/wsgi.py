"""WSGI entry point for gunicorn: `gunicorn api.wsgi:app`."""

from api.app import create_app
from shared.config import get_settings
from shared.logs import configure_logging

configure_logging(get_settings().log_level)
app = create_app()

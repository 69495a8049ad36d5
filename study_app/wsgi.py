"""WSGI entry point for gunicorn: ``gunicorn study_app.wsgi:app``."""

from study_app import create_app

app = create_app()

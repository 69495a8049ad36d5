"""panelrank's web study (Flask).

``create_app`` is the application factory, as in Flask's tutorial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, redirect, url_for

from study_app import config as _config
from study_app import csrf, db
from study_app.config import InsecureConfigError

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app.

    Parameters
    ----------
    config : mapping, optional
        Overrides on top of the ``PANELRANK_*`` environment settings (tests use this).
    """
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=_config.from_env()["INSTANCE_DIR"],
    )
    app.config.update(_config.from_env())
    if config:
        app.config.update(config)
    if app.config["SECRET_KEY"] is None:  # no PANELRANK_SECRET_KEY: the instance folder's own random key
        app.config["SECRET_KEY"] = _config.instance_secret_key(Path(app.config["INSTANCE_DIR"]))
    _refuse_insecure_production(app)
    db.init_app(app)

    csrf.init_app(app)

    from study_app import api, cli, health, i18n, limits, media, organizer, rater

    i18n.init_app(app)
    app.register_blueprint(organizer.bp)
    app.register_blueprint(rater.bp)
    app.register_blueprint(media.bp)
    app.register_blueprint(health.bp)  # /healthz
    api.init_app(app)  # /api/v1 (bearer tokens) and /api/openapi.json
    app.add_url_rule("/", "index", lambda: redirect(url_for("organizer.studies")))
    cli.register(app)
    limits.init_app(app)  # after the blueprints: it throttles their endpoints
    return app


def _refuse_insecure_production(app: Flask) -> None:
    if not app.config["PRODUCTION"]:
        return
    key = app.config.get("SECRET_KEY") or ""
    if len(key) < _config.MIN_SECRET_KEY:
        raise InsecureConfigError(
            f"refusing to start in production with a secret key shorter than {_config.MIN_SECRET_KEY} characters: "
            "set PANELRANK_SECRET_KEY to a long random value (python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    # Production cookies travel over HTTPS only, whatever else the configuration says.
    app.config.update(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=True)

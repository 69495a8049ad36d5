"""panelrank's web study (Flask).

``create_app`` is the application factory, as in Flask's tutorial. Importing the package loads only
the standard library and the config module: every ``panelrank`` command imports it, and Flask,
SQLAlchemy and the blueprints are loaded by ``create_app`` when an app is built.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from study_app import config as _config
from study_app.config import InsecureConfigError

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["InsecureConfigError", "create_app", "data_dir"]


def data_dir(name: str) -> Path:
    """The folder of ``study_app.<name>``: ``templates`` or ``static``.

    The import system locates it (without running it), so the same call works from a wheel, where the
    folders are inside the installed package, and from an editable install, whose import hook maps
    ``study_app.templates`` and ``study_app.static`` to the source tree's top-level folders
    (``package-dir`` in pyproject.toml).

    Raises
    ------
    FileNotFoundError
        If the installation lacks the folder (a wheel built without its package data).
    """
    spec = find_spec(f"{__name__}.{name}")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{__name__}.{name}: folder not installed with the package")
    return Path(next(iter(spec.submodule_search_locations)))


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app.

    Parameters
    ----------
    config : mapping, optional
        Overrides on top of the ``PANELRANK_*`` environment settings (tests use this).
    """
    # Imported here, not at the top: commands that build no app never load Flask or SQLAlchemy.
    from flask import Flask, redirect, url_for

    from study_app import api, csrf, db, health, i18n, limits, media, organizer, rater
    from study_app.cli.commands import register as register_commands

    app = Flask(
        __name__,
        template_folder=data_dir("templates"),
        static_folder=data_dir("static"),
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
    i18n.init_app(app)
    app.register_blueprint(organizer.bp)
    app.register_blueprint(rater.bp)
    app.register_blueprint(media.bp)
    app.register_blueprint(health.bp)  # /healthz
    api.init_app(app)  # /api/v1 (bearer tokens) and /api/openapi.json
    app.add_url_rule("/", "index", lambda: redirect(url_for("organizer.studies")))
    register_commands(app)  # the `panelrank` commands, also on app.cli (app.test_cli_runner())
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

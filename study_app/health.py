"""``/healthz`` for load balancers and systemd watchers: is the database answering?"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from study_app import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 ``{"ok": true}`` when the database answers a query, 503 ``{"ok": false, …}`` otherwise.

    No login and no detail beyond that: the endpoint is public.
    """
    try:
        with db.engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        current_app.logger.warning("healthz: database not answering: %s", exc)
        resp = jsonify(ok=False, error="database unavailable")
        status = 503
    else:
        resp = jsonify(ok=True)
        status = 200
    resp.headers["Cache-Control"] = "no-store"
    return resp, status

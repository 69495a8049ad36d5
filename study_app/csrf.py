"""CSRF protection for HTML forms: a per-session token checked on every unsafe request.

JSON APIs are protected differently (they require ``Content-Type: application/json``,
which a cross-site form cannot send without a CORS preflight).
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, request, session

FIELD = "csrf_token"


def token() -> str:
    if FIELD not in session:
        session[FIELD] = secrets.token_urlsafe(32)
    return session[FIELD]


def protect() -> None:
    """``before_request`` hook: refuse a form POST whose token does not match."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.is_json:
        return
    sent = request.form.get(FIELD) or request.headers.get("X-CSRF-Token", "")
    expected = session.get(FIELD, "")
    # As bytes: compare_digest refuses str with non-ASCII characters (a hostile form would be a 500).
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="The form expired or was not sent by this site (CSRF check failed). "
                               "Reload the page and try again.")


def init_app(app: Flask) -> None:
    app.jinja_env.globals["csrf_token"] = token

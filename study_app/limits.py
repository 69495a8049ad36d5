"""Throttling of the organizer login and the rater entry (Flask-Limiter).

Each app gets its own limiter, so two apps in one process (tests, the CLI) never share
counters or settings, and the limits are attached here by endpoint, in one place, rather
than by decorators spread over the blueprints. Settings (``study_app.config``):
``RATELIMIT_STORAGE_URI`` (``memory://`` counts per process: several workers or hosts need
``redis://…`` or ``memcached://…`` to count together), ``LOGIN_RATE_LIMIT``,
``RATER_ENTRY_RATE_LIMIT``, ``TRUSTED_PROXIES`` and Flask-Limiter's own ``RATELIMIT_ENABLED``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RouteLimit

LOGIN_MESSAGE = ("Too many failed log-in attempts from this address or for this email. "
                 "Wait a few minutes, then try again.")
ENTRY_MESSAGE = ("Too many requests from your network address. "
                 "Wait a minute, then open the study link again.")


def init_app(app: Flask) -> Limiter:
    """Create the app's limiter and throttle the password forms and the rater entry.

    Parameters
    ----------
    app : Flask
        With its blueprints registered (the limits wrap their view functions).

    Returns
    -------
    Limiter
        Also in ``app.extensions["panelrank.limiter"]``.
    """
    # headers_enabled: a refused request carries Retry-After. When a shared storage (redis)
    # is unreachable, counting falls back to this process instead of failing the request.
    limiter = Limiter(client_address, headers_enabled=True, in_memory_fallback_enabled=True)
    limiter.init_app(app)
    login = app.config["LOGIN_RATE_LIMIT"]

    def failed_attempts(**kwargs: Any) -> RouteLimit:
        return limiter.limit(login, methods=["POST"], deduct_when=_failed, error_message=LOGIN_MESSAGE, **kwargs)

    # The login counts per address and per email, so spreading guesses over many addresses does not help.
    _throttle(app, "organizer.login", [failed_attempts(), failed_attempts(key_func=_email_key)])
    _throttle(app, "organizer.change_password", [failed_attempts()])
    _throttle(app, "rater.entry", [limiter.limit(app.config["RATER_ENTRY_RATE_LIMIT"], error_message=ENTRY_MESSAGE)])
    app.extensions["panelrank.limiter"] = limiter
    return limiter


def _throttle(app: Flask, endpoint: str, limits: list[RouteLimit]) -> None:
    view: Callable[..., Any] = app.view_functions[endpoint]
    for limit in limits:
        view = limit(view)
    app.view_functions[endpoint] = view


def client_address() -> str:
    """The address a request came from, also behind a reverse proxy on a trusted address.

    Behind nginx every request arrives from nginx's address (gunicorn does not rewrite it), so
    one count would cover every rater and organizer. A proxy listed in ``TRUSTED_PROXIES``
    (default: this machine) appends the address it saw to ``X-Forwarded-For``; the last entry
    is that one, which a client cannot forge. From anywhere else the header is ignored.
    """
    addr = request.remote_addr or "unknown"
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and addr in current_app.config["TRUSTED_PROXIES"]:
        return forwarded.rsplit(",", 1)[-1].strip() or addr
    return addr


def _failed(response: Response) -> bool:
    # Only failed attempts count: an organizer who logs in successfully (a redirect) spends
    # nothing, so colleagues behind one address do not lock each other out.
    return response.status_code in (400, 401)


def _email_key() -> str:
    return "email:" + (request.form.get("email") or "").strip().lower()

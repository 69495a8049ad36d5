"""Stimulus files behind opaque tokens: ``/media/<token>``.

A token is an HMAC (app secret) over the study id and stimulus id, so it is
unguessable, stable for the study's life, and says nothing about the condition,
the content or the file: stimulus ids are assigned in manifest order, so even a
signed-but-readable id would reveal the condition. The server maps tokens back
with a per-process table built from the stimulus rows.

Responses support HTTP Range (206), carry an ETag derived from the token and the
file's size and mtime (never its name), and never a ``Content-Disposition``. The
files served are the clean copies made at study creation (``<instance>/stimuli/``,
:func:`analysis.video.clean_copy`): opaque names, one fixed mtime, no metadata.

The bytes are streamed in chunks (Werkzeug's file wrapper, ``sendfile`` under
gunicorn), or left to the front web server: with ``PANELRANK_MEDIA_OFFLOAD`` set to
``x-accel-redirect`` (nginx) or ``x-sendfile`` (Apache, lighttpd) the answer, after
the same token check, is an empty response whose header names the copy — under
``PANELRANK_MEDIA_INTERNAL_PREFIX`` (default ``/_media/``) for nginx's ``internal``
location, or its absolute path for X-Sendfile.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import mimetypes
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from flask import Blueprint, Flask, abort, current_app, request, send_file
from flask.blueprints import BlueprintSetupState
from sqlalchemy import func, select
from werkzeug.http import parse_range_header
from werkzeug.wrappers import Response

from study_app.db import get_db
from study_app.models import Stimulus

bp = Blueprint("media", __name__)

TOKEN_CHARS = 32  # hex characters: 128 bits
CACHE_CONTROL_MAX_AGE = 24 * 3600
# Headers of a remote (URL) stimulus passed through to the rater; everything else is dropped.
_PROXY_HEADERS = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges")
_CHUNK = 256 * 1024
#: Values of ``PANELRANK_MEDIA_OFFLOAD`` besides the empty default (the app sends the bytes).
OFFLOAD_MODES = ("x-accel-redirect", "x-sendfile")


def copies_dir(app: Flask | None = None) -> Path:
    """The folder of the clean stimulus copies: ``<instance>/stimuli`` (one sub-folder per study)."""
    return Path((app or current_app).config["INSTANCE_DIR"]) / "stimuli"


def offload_mode(app: Flask | None = None) -> str:
    """``""`` (the app streams the bytes), ``"x-accel-redirect"`` or ``"x-sendfile"``."""
    return str((app or current_app).config["MEDIA_OFFLOAD"]).strip().lower()


@bp.record_once
def _check_settings(state: BlueprintSetupState) -> None:
    # A typo must stop the start, not silently serve every clip through the app.
    mode = offload_mode(state.app)
    if mode and mode not in OFFLOAD_MODES:
        raise ValueError(f"PANELRANK_MEDIA_OFFLOAD must be one of {', '.join(OFFLOAD_MODES)} or empty, not {mode!r}")
    prefix = str(state.app.config["MEDIA_INTERNAL_PREFIX"])
    if not (prefix.startswith("/") and prefix.endswith("/")):
        raise ValueError(f"PANELRANK_MEDIA_INTERNAL_PREFIX must start and end with '/', not {prefix!r}")


def token_for(study_id: int, stimulus_id: int, secret: str | None = None) -> str:
    """The opaque media token of one stimulus (hex, so it never contains a word)."""
    key = (secret or current_app.config["SECRET_KEY"]).encode()
    mac = hmac.new(key, f"panelrank-media:{study_id}:{stimulus_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:TOKEN_CHARS]


def media_url(token: str) -> str:
    return f"/media/{token}"


@dataclass
class _TokenTable:
    """token → stimulus id, rebuilt only when the stimulus table changed."""

    stamp: tuple[int, int] = (-1, -1)
    ids: dict[str, int] | None = None


_tables: dict[int, _TokenTable] = {}
_lock = threading.Lock()


def _lookup(token: str) -> int | None:
    db = get_db()
    # (count, max id) changes whenever a study is created or deleted: cheap to check per request.
    count, top = db.execute(select(func.count(Stimulus.id), func.max(Stimulus.id))).one()
    stamp = (count or 0, top or 0)
    with _lock:
        table = _tables.setdefault(id(current_app._get_current_object()), _TokenTable())  # type: ignore[attr-defined]
        if table.stamp != stamp or table.ids is None:
            rows = db.execute(select(Stimulus.study_id, Stimulus.id)).all()
            table.ids = {token_for(study, stim): stim for study, stim in rows}
            table.stamp = stamp
        return table.ids.get(token)


@bp.get("/media/<token>")
def serve(token: str) -> Response:
    if len(token) != TOKEN_CHARS or any(c not in "0123456789abcdef" for c in token):
        abort(404)
    stimulus_id = _lookup(token)
    if stimulus_id is None:
        abort(404)
    stim = get_db().get(Stimulus, stimulus_id)
    assert stim is not None
    if urlparse(stim.path).scheme in ("http", "https"):
        return _proxy(stim.path, token)
    return _file(stim.path, token)


def _file(path: str, token: str) -> Response:
    try:
        st = os.stat(path)
    except OSError:
        abort(404)
    mimetype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    offloaded = _offload(path, mimetype)
    if offloaded is not None:
        return offloaded
    etag = hmac.new(token.encode(), f"{st.st_size}:{st.st_mtime_ns}".encode(), hashlib.sha256).hexdigest()[:24]
    _normalise_range(request.environ, st.st_size)
    resp = send_file(path, mimetype=mimetype, conditional=True, etag=etag, max_age=CACHE_CONTROL_MAX_AGE)
    _private(resp)
    resp.headers.pop("Content-Disposition", None)
    return resp


def _private(resp: Response) -> None:
    resp.cache_control.public = False
    resp.cache_control.private = True
    resp.cache_control.max_age = CACHE_CONTROL_MAX_AGE


def _offload(path: str, mimetype: str) -> Response | None:
    """An empty answer that hands the file to the front web server, or None to send it here.

    Only clean copies are handed over (studies created before copies existed are sent by
    the app), so the front server never sees a name that means anything either. The front
    server answers Range and conditional requests itself.
    """
    mode = offload_mode()
    root = copies_dir()
    if not mode or not Path(path).is_relative_to(root):
        return None
    resp = Response(status=200, mimetype=mimetype)
    if mode == "x-sendfile":
        resp.headers["X-Sendfile"] = path
    else:
        prefix = str(current_app.config["MEDIA_INTERNAL_PREFIX"])
        resp.headers["X-Accel-Redirect"] = prefix + Path(path).relative_to(root).as_posix()
    _private(resp)
    return resp


def _normalise_range(environ: dict[str, object], size: int) -> None:
    """Bend the Range header to what RFC 9110 asks before Werkzeug answers it.

    Werkzeug answers 416 to any Range it will not serve, but RFC 9110 §14.2 wants a
    range in an unknown unit ignored (a 200 with the whole file), and a suffix longer
    than the file means the whole file (§14.1.3). A satisfiable multi-range request is
    served whole too (ignoring Range is always allowed): players never send one, and a
    multipart answer would be of no use to them. Malformed or unsatisfiable byte ranges
    still get 416 with ``Content-Range: bytes */size``.
    """
    header = environ.get("HTTP_RANGE")
    if not isinstance(header, str):
        return
    unit = header.split("=", 1)[0].strip().lower()
    parsed = parse_range_header(header)
    if unit != "bytes" or (parsed is not None and len(parsed.ranges) > 1):
        del environ["HTTP_RANGE"]
    elif parsed is not None and parsed.ranges[0][0] < 0 and -parsed.ranges[0][0] > size > 0:
        environ["HTTP_RANGE"] = "bytes=0-"


def _proxy(url: str, token: str) -> Response:
    """Stream a remote stimulus through this server so its URL never reaches the rater."""
    headers = {"Range": request.headers["Range"]} if "Range" in request.headers else {}
    try:
        upstream = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=20)
    except urllib.error.HTTPError as exc:
        status = exc.code if exc.code == 416 else 502
        return Response(f'{{"error": "media unavailable ({exc.code})"}}', status=status, mimetype="application/json")
    except (urllib.error.URLError, TimeoutError):
        return Response('{"error": "media unavailable"}', status=502, mimetype="application/json")
    out = Response(_stream(upstream), status=upstream.status, direct_passthrough=True)
    for name in _PROXY_HEADERS:
        if upstream.headers.get(name):
            out.headers[name] = upstream.headers[name]
    out.headers["ETag"] = f'"{token}"'
    out.headers["Cache-Control"] = f"private, max-age={CACHE_CONTROL_MAX_AGE}"
    return out


def _stream(upstream: http.client.HTTPResponse) -> Iterator[bytes]:
    with upstream:
        while chunk := upstream.read(_CHUNK):
            yield chunk

"""``/media/<token>``: opaque HMAC tokens, HTTP Range, ETag/Cache-Control, no names anywhere."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from study_app import db
from study_app.media import token_for
from study_app.models import Stimulus
from tests.rater_support import SMALL_SESSION, make_study


@pytest.fixture
def stimuli(app: Flask, demo_manifest_path: Path) -> list[tuple[str, str, int]]:
    """(token, path, size) of every stimulus of the demo study."""
    make_study(app, demo_manifest_path, **SMALL_SESSION)
    with app.app_context(), db.transaction(app) as s:
        rows = s.execute(select(Stimulus.study_id, Stimulus.id, Stimulus.path)).all()
        return [(token_for(study, sid, "test-secret"), path, Path(path).stat().st_size) for study, sid, path in rows]


def test_tokens_are_opaque_and_distinct(stimuli: list[tuple[str, str, int]]) -> None:
    tokens = [t for t, _, _ in stimuli]
    assert len(set(tokens)) == len(tokens) == 24
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in tokens)
    assert token_for(1, 1, "a") != token_for(1, 1, "b") != token_for(2, 1, "b")


def test_full_file_with_validators_and_no_names(client: FlaskClient, stimuli: list[tuple[str, str, int]]) -> None:
    token, path, _ = stimuli[0]
    r = client.get(f"/media/{token}")
    assert r.status_code == 200 and r.data == Path(path).read_bytes()
    assert r.headers["Content-Type"] == "video/mp4" and r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["ETag"] and "private" in r.headers["Cache-Control"] and "public" not in r.headers["Cache-Control"]
    assert "Content-Disposition" not in r.headers
    headers = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
    for part in (Path(path).name, Path(path).stem, Path(path).parent.name, str(Path(path).parent)):
        # Whole tokens only: a random hex ETag may well contain "c1" inside a longer run.
        assert not re.search(rf"(?<![A-Za-z0-9]){re.escape(part)}(?![A-Za-z0-9])", headers), part
    again = client.get(f"/media/{token}", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_range_requests(client: FlaskClient, stimuli: list[tuple[str, str, int]]) -> None:
    token, path, size = stimuli[1]
    data = Path(path).read_bytes()
    part = client.get(f"/media/{token}", headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and part.data == data[10:110]
    assert part.headers["Content-Range"] == f"bytes 10-109/{size}"
    tail = client.get(f"/media/{token}", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.data == data[-50:]
    beyond = client.get(f"/media/{token}", headers={"Range": f"bytes={size + 10}-"})
    assert beyond.status_code == 416
    head = client.head(f"/media/{token}")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == size


@pytest.mark.parametrize(("header", "status", "piece"), [
    ("bytes=-100", 206, slice(-100, None)),            # suffix: the last 100 bytes
    ("bytes=-{big}", 206, slice(0, None)),             # suffix longer than the file: all of it (RFC 9110)
    ("bytes={last}-", 206, slice(-1, None)),           # the last byte alone
    ("bytes=0-{big}", 206, slice(0, None)),            # an end past the file is clipped
    ("bytes=-0", 416, None),                           # empty suffix: unsatisfiable
    ("bytes={size}-", 416, None),                      # starts after the end
    ("bytes=100-50", 416, None),                       # end before start
    ("bytes=abc", 416, None),                          # malformed
    ("items=0-5", 200, slice(0, None)),                # unknown unit: ignored (RFC 9110 §14.2)
    ("bytes=0-1,5-6", 200, slice(0, None)),            # several ranges: served whole
])
def test_range_edge_cases(client: FlaskClient, stimuli: list[tuple[str, str, int]], header: str, status: int,
                          piece: slice | None) -> None:
    token, path, size = stimuli[1]
    data = Path(path).read_bytes()
    r = client.get(f"/media/{token}", headers={"Range": header.format(big=size + 50, last=size - 1, size=size)})
    assert r.status_code == status, header
    if status == 416:
        assert r.headers["Content-Range"] == f"bytes */{size}"
        return
    assert r.data == data[piece]
    if status == 206:
        start = len(data) - len(r.data) if piece.start and piece.start < 0 else 0
        assert r.headers["Content-Range"] == f"bytes {start}-{start + len(r.data) - 1}/{size}"


def test_head_answers_like_get_without_a_body(client: FlaskClient, stimuli: list[tuple[str, str, int]]) -> None:
    token, _, size = stimuli[1]
    get = client.get(f"/media/{token}", headers={"Range": "bytes=0-9"})
    head = client.head(f"/media/{token}", headers={"Range": "bytes=0-9"})
    assert head.status_code == 206 and head.data == b""
    for name in ("Content-Length", "Content-Range", "ETag", "Cache-Control", "Content-Type"):
        assert head.headers[name] == get.headers[name], name
    stale = client.get(f"/media/{token}", headers={"Range": "bytes=0-9", "If-Range": '"another"'})
    assert stale.status_code == 200 and len(stale.data) == size  # a changed file is sent whole
    assert client.post(f"/media/{token}").status_code == 405


@pytest.mark.parametrize("token", ["0" * 32, "nothex" + "0" * 26, "abc", "A" * 32])
def test_unknown_or_malformed_tokens_are_404(client: FlaskClient, stimuli: list, token: str) -> None:
    assert client.get(f"/media/{token}").status_code == 404


def test_token_of_another_secret_is_404(client: FlaskClient, stimuli: list, app: Flask) -> None:
    with app.app_context(), db.transaction(app) as s:
        study, sid = s.execute(select(Stimulus.study_id, Stimulus.id)).first()
    assert client.get(f"/media/{token_for(study, sid, 'another-secret')}").status_code == 404


def test_missing_file_is_404(app: Flask, client: FlaskClient, stimuli: list[tuple[str, str, int]],
                             tmp_path: Path) -> None:
    token, _, _ = stimuli[2]
    with app.app_context(), db.transaction(app) as s:
        stim = next(x for x in s.scalars(select(Stimulus)) if token_for(x.study_id, x.id, "test-secret") == token)
        stim.path = str(tmp_path / "gone.mp4")
    assert client.get(f"/media/{token}").status_code == 404


class _RangeHandler(BaseHTTPRequestHandler):
    payload = bytes(range(256)) * 40

    def do_GET(self) -> None:
        if self.path != "/clip.mp4":
            self.send_error(404)
            return
        data = self.payload
        rng = self.headers.get("Range")
        self.send_response(206 if rng else 200)
        if rng:
            start, end = (int(x) for x in rng.removeprefix("bytes=").split("-"))
            data = self.payload[start:end + 1]
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(self.payload)}")
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Disposition", "attachment; filename=clip.mp4")
        self.send_header("X-Upstream-Path", "/secret/clip.mp4")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_url_stimuli_are_proxied_without_their_address(app: Flask, client: FlaskClient, stimuli: list,
                                                       upstream: str) -> None:
    with app.app_context(), db.transaction(app) as s:
        stim = s.scalars(select(Stimulus)).first()
        stim.path = f"{upstream}/clip.mp4"
        token = token_for(stim.study_id, stim.id, "test-secret")
        other = s.scalars(select(Stimulus)).all()[1]
        other.path = f"{upstream}/missing.mp4"
        missing = token_for(other.study_id, other.id, "test-secret")
    full = client.get(f"/media/{token}")
    assert full.status_code == 200 and full.data == _RangeHandler.payload
    assert "Content-Disposition" not in full.headers and "X-Upstream-Path" not in full.headers
    part = client.get(f"/media/{token}", headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.data == _RangeHandler.payload[5:15]
    assert part.headers["Content-Range"] == f"bytes 5-14/{len(_RangeHandler.payload)}"
    gone = client.get(f"/media/{missing}")
    assert gone.status_code == 502 and "unavailable" in gone.json["error"] and "127.0.0.1" not in gone.get_data(True)

"""``/media/<token>``: opaque HMAC tokens, HTTP Range, ETag/Cache-Control, no names anywhere; clean
copies made at study creation; offloading to the front web server."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from study_app import create_app, db
from study_app.demo.builder import demo_manifest
from study_app.manifest import ManifestError, validate
from study_app.media import copies_dir, token_for
from study_app.models import Condition, Content, Stimulus, Study
from study_app.studies import create_study
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


# --------------------------------------------------------------------------- clean copies
def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray() for f in c.decode(c.streams.video[0])]


@pytest.fixture
def titled_clips(demo_clips: Path, tmp_path: Path) -> Path:
    """The demo clips, the compressed ones carrying a title as editing tools leave it."""
    out = tmp_path / "titled"
    shutil.copytree(demo_clips, out)
    for clip in out.glob("*/compressed.mp4"):
        with av.open(str(clip)) as inp, av.open(str(clip.with_suffix(".tmp.mp4")), "w") as dst:
            dst.metadata["title"] = "heavy compression crf 44"
            ost = dst.add_stream_from_template(inp.streams.video[0])
            for packet in inp.demux(inp.streams.video[0]):
                if packet.dts is not None:
                    packet.stream = ost
                    dst.mux(packet)
        clip.with_suffix(".tmp.mp4").replace(clip)
    return out


def _served(app: Flask, slug: str) -> dict[str, tuple[str, str]]:
    """condition → (token, stored path) of content c1."""
    with app.app_context(), db.transaction(app) as s:
        rows = s.execute(select(Stimulus.study_id, Stimulus.id, Stimulus.path, Condition.key)
                         .join(Condition, Stimulus.condition_id == Condition.id)
                         .join(Content, Stimulus.content_id == Content.id)
                         .join(Study, Stimulus.study_id == Study.id)
                         .where(Content.key == "c1", Study.slug == slug)).all()
    return {cond: (token_for(study, sid, "test-secret"), path) for study, sid, path, cond in rows}


def test_served_clips_are_clean_copies(app: Flask, client: FlaskClient, titled_clips: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump(demo_manifest(titled_clips)))
    slug = make_study(app, manifest, **SMALL_SESSION)
    served = _served(app, slug)
    original = (titled_clips / "c1" / "compressed.mp4").read_bytes()
    assert b"crf=" in original and b"heavy compression" in original  # what the copy must lose
    token, path = served["compressed"]
    assert Path(path).parent.parent == copies_dir(app) and re.fullmatch(r"[0-9a-f]{32}\.mp4", Path(path).name)
    r = client.get(f"/media/{token}")
    assert r.status_code == 200
    for needle in (b"x264", b"crf=", b"Lavf", b"heavy compression", b"compressed.mp4", str(titled_clips).encode()):
        assert needle not in r.data, needle
    copy = tmp_path / "fetched.mp4"
    copy.write_bytes(r.data)
    ours, theirs = _frames(copy), _frames(titled_clips / "c1" / "compressed.mp4")
    assert len(ours) == len(theirs) == 25 and all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
    other = client.get(f"/media/{served['source'][0]}")
    assert r.headers["Last-Modified"] == other.headers["Last-Modified"] == "Sat, 01 Jan 2000 00:00:00 GMT"
    with app.app_context(), db.transaction(app) as s:
        sizes = dict(s.execute(select(Stimulus.path, Stimulus.size_bytes)).all())
    assert sizes[path] == len(r.data)  # the preload progress counts the bytes actually sent


def test_a_clip_that_cannot_be_remuxed_is_a_problem_and_nothing_is_written(
        app: Flask, demo_manifest_path: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(demo_manifest_path.read_text())
    vm = validate(raw, demo_manifest_path)  # probed while the file was still fine
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\0" * 4096)
    vm.stimuli[3] = replace(vm.stimuli[3], path=str(broken))
    with app.app_context(), pytest.raises(ManifestError) as caught, db.transaction(app) as s:
        create_study(s, vm)
    assert caught.value.problems == [
        f"manifest.yaml: stimuli[{vm.stimuli[3].content}/{vm.stimuli[3].condition}]: '{broken}': "
        "cannot be remuxed (Invalid data found when processing input)"]
    assert not any(copies_dir(app).rglob("*"))
    with app.app_context(), db.transaction(app) as s:
        assert s.scalar(select(func.count(Study.id))) == 0


def test_copies_go_when_the_transaction_rolls_back(app: Flask, demo_manifest_path: Path) -> None:
    vm = validate(yaml.safe_load(demo_manifest_path.read_text()), demo_manifest_path)
    with app.app_context(), pytest.raises(RuntimeError), db.transaction(app) as s:
        create_study(s, vm)
        assert len(list(copies_dir(app).rglob("*.mp4"))) == 24
        raise RuntimeError("a later step of the same transaction fails")
    assert not any(copies_dir(app).rglob("*.mp4"))
    make_study(app, demo_manifest_path)  # and a committed study keeps its copies
    assert len(list(copies_dir(app).rglob("*.mp4"))) == 24


# --------------------------------------------------------------------------- offloading
def test_x_accel_redirect_hands_the_copy_to_nginx(app: Flask, client: FlaskClient,
                                                  stimuli: list[tuple[str, str, int]]) -> None:
    app.config.update(MEDIA_OFFLOAD="x-accel-redirect", MEDIA_INTERNAL_PREFIX="/_internal/")
    token, path, _ = stimuli[0]
    for r in (client.get(f"/media/{token}", headers={"Range": "bytes=0-9"}), client.head(f"/media/{token}")):
        assert r.status_code == 200 and r.data == b""
        assert r.headers["X-Accel-Redirect"] == "/_internal/" + Path(path).relative_to(copies_dir(app)).as_posix()
        assert re.fullmatch(r"/_internal/\d+/[0-9a-f]{32}\.mp4", r.headers["X-Accel-Redirect"])
        assert r.headers["Content-Type"] == "video/mp4" and "private" in r.headers["Cache-Control"]
        assert "Content-Disposition" not in r.headers and "ETag" not in r.headers
    assert client.get(f"/media/{'0' * 32}").status_code == 404  # the same token check first


def test_x_sendfile_and_files_outside_the_copies(app: Flask, client: FlaskClient,
                                                 stimuli: list[tuple[str, str, int]], tmp_path: Path) -> None:
    app.config["MEDIA_OFFLOAD"] = "x-sendfile"
    token, path, _ = stimuli[0]
    r = client.get(f"/media/{token}")
    assert r.headers["X-Sendfile"] == path and r.data == b""
    # A study made before clean copies existed points at the original: the app sends it itself.
    old = tmp_path / "old-style.mp4"
    old.write_bytes(Path(path).read_bytes())
    with app.app_context(), db.transaction(app) as s:
        stim = next(x for x in s.scalars(select(Stimulus)) if token_for(x.study_id, x.id, "test-secret") == token)
        stim.path = str(old)
    r = client.get(f"/media/{token}")
    assert r.status_code == 200 and "X-Sendfile" not in r.headers and r.data == old.read_bytes()


def test_an_unknown_offload_mode_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PANELRANK_MEDIA_OFFLOAD must be one of"):
        create_app({"INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "test-secret", "MEDIA_OFFLOAD": "x-accel"})

"""The nginx block of docs/production.md in front of ``panelrank serve`` with X-Accel-Redirect on:
clips come through nginx (whole and by Range) with nothing of the internal path leaked."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_serve import Server, free_port, launch, stop

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (make test installs Debian's "
                                                      "nginx with apt-get, like Chromium)")


def doc_block(gunicorn_port: int, nginx_port: int, copies: Path) -> str:
    """The ``nginx`` block of docs/production.md, pointed at this test's ports and folder."""
    doc = (ROOT / "docs" / "production.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```nginx\n(.*?)```", doc, flags=re.S)
    assert len(blocks) == 1, "docs/production.md should hold exactly one nginx block"
    block = blocks[0]
    for old, new in (("listen 80;", f"listen 127.0.0.1:{nginx_port};"),
                     ("server 127.0.0.1:8000;", f"server 127.0.0.1:{gunicorn_port};"),
                     ("alias /var/lib/panelrank/instance/stimuli/;", f"alias {copies}/;")):
        assert block.count(old) == 1, f"docs/production.md nginx block: {old!r} not found once"
        block = block.replace(old, new)
    return block


def nginx_conf(prefix: Path, site: str) -> str:
    # As root, nginx would drop its workers to "nobody", who cannot read pytest's private temp folders.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = "\n".join(f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                                "uwsgi", "scgi"))
    return (f"daemon off;\nworker_processes 1;\n{user}pid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} info;\nevents {{ worker_connections 128; }}\n"
            f"http {{\n    access_log {prefix / 'access.log'};\n{temps}\n    default_type application/octet-stream;\n"
            f"{site}\n}}\n")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=20) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def app_server(tmp_path: Path, demo_clips: Path) -> Iterator[Server]:
    server = launch(tmp_path / "app", demo_clips, env={"PANELRANK_MEDIA_OFFLOAD": "x-accel-redirect",
                                                       "PANELRANK_MEDIA_INTERNAL_PREFIX": "/_media/"},
                    big_clip=False)
    yield server
    stop(server.proc)


@pytest.fixture
def nginx(tmp_path: Path, app_server: Server) -> Iterator[str]:
    """nginx on a free loopback port in front of ``app_server``; yields its base URL."""
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    # The doc's alias is $PANELRANK_INSTANCE/stimuli/: where the app keeps the clean copies.
    copies = Path(app_server.env["PANELRANK_INSTANCE"]) / "stimuli"
    assert app_server.clip.parent.parent == copies
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, doc_block(app_server.port, port, copies)))
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while not _answers(base):
            assert proc.poll() is None, f"nginx exited: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "nginx did not come up"
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful shutdown
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers(base: str) -> bool:
    try:
        return get(f"{base}/healthz")[0] == 200
    except OSError:
        return False


def test_clips_come_through_nginx(nginx: str, app_server: Server) -> None:
    data = app_server.clip.read_bytes()
    # The app itself only names the file ...
    status, headers, body = get(app_server.url(app_server.media))
    internal = headers["X-Accel-Redirect"]
    assert status == 200 and body == b"" and re.fullmatch(r"/_media/\d+/[0-9a-f]{32}\.mp4", internal)
    # ... nginx sends it, whole or in part, and keeps the redirect to itself.
    status, headers, body = get(nginx + app_server.media)
    assert status == 200 and body == data
    assert headers["Content-Type"] == "video/mp4" and headers["Accept-Ranges"] == "bytes"
    assert "X-Accel-Redirect" not in headers and "Content-Disposition" not in headers
    assert headers["Last-Modified"] == "Sat, 01 Jan 2000 00:00:00 GMT"  # the copies' fixed mtime
    assert "private" in headers.get("Cache-Control", "")
    assert not any(Path(internal).name in v or Path(internal).parent.as_posix() in v for v in headers.values())
    status, headers, body = get(nginx + app_server.media, {"Range": "bytes=10-109"})
    assert status == 206 and body == data[10:110]
    assert headers["Content-Range"] == f"bytes 10-109/{len(data)}" and "X-Accel-Redirect" not in headers
    etag = get(nginx + app_server.media)[1]["ETag"]
    assert get(nginx + app_server.media, {"If-None-Match": etag})[0] == 304
    # The internal location is nobody's to ask for, and a wrong token is refused before it.
    assert get(nginx + internal)[0] == 404
    assert get(f"{nginx}/_media/")[0] == 404
    assert get(f"{nginx}/media/{'0' * 32}")[0] == 404

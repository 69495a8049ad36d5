"""``panelrank serve``: gthread workers that slow clip readers cannot block, a pid file, workers
that die with their master, and ``/healthz``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from flask import Flask
from sqlalchemy import select

from study_app import create_app, db, migrate
from study_app.demo.builder import demo_manifest
from study_app.media import token_for
from study_app.models import Stimulus
from tests.rater_support import SMALL_SESSION, make_study

PANELRANK = str(Path(sys.executable).with_name("panelrank"))
SECRET = "serve-test-secret-key-0123456789"
BIG = 48 * 1024 * 1024  # far more than loopback socket buffers hold: a slow reader really blocks a sender


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    pidfile: Path
    media: str  # URL path of the first clip
    clip: Path  # the file behind it

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def start(env: dict[str, str], port: int, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([PANELRANK, "serve", "--port", str(port), *extra], env=env, cwd=env["PANELRANK_INSTANCE"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(port: int, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}: {proc.stderr.read().decode()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
    raise AssertionError("serve did not answer /healthz in time")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def launch(folder: Path, demo_clips: Path, *extra: str, env: dict[str, str] | None = None,
           big_clip: bool = True) -> Server:
    """``panelrank serve`` (2 workers × 4 threads) on a demo study, its first clip made 48 MB big.

    ``env`` adds ``PANELRANK_*`` settings; the caller stops the server with :func:`stop`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.yaml"
    manifest.write_text(yaml.safe_dump(demo_manifest(demo_clips), sort_keys=False))
    inst = folder / "instance"
    url = f"sqlite:///{folder / 'serve.sqlite'}"
    app = create_app({"DATABASE_URL": url, "INSTANCE_DIR": str(inst), "SECRET_KEY": SECRET})
    migrate.upgrade(url)
    make_study(app, manifest, **SMALL_SESSION)
    with app.app_context(), db.transaction(app) as s:
        stim = s.scalars(select(Stimulus).order_by(Stimulus.id)).first()
        if big_clip:
            Path(stim.path).write_bytes(os.urandom(BIG))
        media, clip = f"/media/{token_for(stim.study_id, stim.id, SECRET)}", Path(stim.path)
    full_env = {**os.environ, "PANELRANK_INSTANCE": str(inst), "PANELRANK_DATABASE_URL": url,
                "PANELRANK_SECRET_KEY": SECRET, **(env or {})}
    full_env.pop("PANELRANK_ENV", None)
    port = free_port()
    proc = start(full_env, port, "--threads", "4", *extra)
    try:
        wait_ready(port, proc)
    except BaseException:
        stop(proc)
        raise
    return Server(proc, port, full_env, inst / "panelrank.pid", media, clip)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_clips: Path) -> Iterator[Server]:
    """One server for the tests that leave it running."""
    running_server = launch(tmp_path_factory.mktemp("serve"), demo_clips)
    yield running_server
    stop(running_server.proc)


@pytest.fixture
def own_server(tmp_path: Path, demo_clips: Path) -> Iterator[Server]:
    """A server of the test's own, for tests that kill it."""
    running_server = launch(tmp_path, demo_clips)
    yield running_server
    stop(running_server.proc)


def slow_reader(port: int, path: str) -> socket.socket:
    """A client that asks for a clip and then reads nothing: the sending thread blocks."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    assert s.recv(64).startswith(b"HTTP/1.1 200")
    return s


def timed_get(url: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=20) as r:
        r.read()
        return r.status, time.perf_counter() - t0


def descendants(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (gunicorn workers of a master)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a reaper that never comes)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_slow_clip_readers_do_not_block_pages(server: Server) -> None:
    readers = [slow_reader(server.port, server.media) for _ in range(3)]
    try:
        # Each worker of the old 2-sync-worker setup would now be stuck behind a reader.
        for path in ("/healthz", "/organizer/login", "/healthz"):
            status, seconds = timed_get(server.url(path))
            assert status == 200 and seconds < 1.0, (path, seconds)
    finally:
        for r in readers:
            r.close()


def test_pid_file_refuses_a_second_server(server: Server) -> None:
    assert int(server.pidfile.read_text()) == server.proc.pid  # serve execs gunicorn: same pid
    second = subprocess.run([PANELRANK, "serve", "--port", str(free_port())], env=server.env,
                            cwd=server.env["PANELRANK_INSTANCE"], capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"Error: panelrank is already running with pid {server.proc.pid} (pid file {server.pidfile}); "
        f"stop it first (kill {server.proc.pid})"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killed_master_takes_its_workers_and_a_new_serve_starts(own_server: Server) -> None:
    server = own_server
    workers = descendants(server.proc.pid)
    assert len(workers) == 2
    readers = [slow_reader(server.port, server.media) for _ in range(2)]  # workers busy mid-download
    try:
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (any(map(running, workers)) or not port_is_free(server.port)):
            time.sleep(0.1)
        assert not any(map(running, workers)) and port_is_free(server.port)
    finally:
        for r in readers:
            r.close()
    # The pid file still names the dead master: a new serve replaces it and starts on the same port.
    assert int(server.pidfile.read_text()) == server.proc.pid
    again = start(server.env, server.port)
    try:
        wait_ready(server.port, again)
        assert int(server.pidfile.read_text()) == again.pid
    finally:
        stop(again)
    assert not server.pidfile.exists()  # a clean stop removes it


def test_serve_and_demo_run_gthread_workers(app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("study_app.cli.study.os.execv", lambda path, args: calls.append(args))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["serve", "--port", "8123", "--threads", "12", "--pid", str(tmp_path / "x.pid")]
                         ).exit_code == 0
    assert runner.invoke(args=["demo", "--small", "--port", "8124"]).exit_code == 0
    served, demo = calls
    for args, port in ((served, "8123"), (demo, "8124")):
        assert args[args.index("--worker-class") + 1] == "gthread"
        assert args[args.index("--bind") + 1] == f"127.0.0.1:{port}"
        assert args[args.index("--config") + 1] == "python:study_app.gunicorn_conf"
    assert served[served.index("--threads") + 1] == "12"
    assert served[served.index("--pid") + 1] == str(tmp_path / "x.pid")
    assert demo[demo.index("--threads") + 1] == "16"
    assert demo[demo.index("--pid") + 1] == str(Path(app.config["INSTANCE_DIR"]).resolve() / "panelrank.pid")


def test_a_stale_or_garbage_pid_file_is_replaced(app: Flask, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setattr("study_app.cli.study.os.execv", lambda path, args: None)
    pidfile = tmp_path / "p.pid"
    dead = subprocess.Popen(["true"])
    dead.wait()
    for content in (f"{dead.pid}\n", "garbage", f"{os.getpid()}\n"):  # ours is alive but not a gunicorn
        pidfile.write_text(content)
        result = app.test_cli_runner().invoke(args=["serve", "--pid", str(pidfile)])
        assert result.exit_code == 0 and not pidfile.exists(), content


def test_healthz(client: object, tmp_path: Path) -> None:
    r = client.get("/healthz")  # type: ignore[attr-defined]
    assert r.status_code == 200 and r.json == {"ok": True} and r.headers["Cache-Control"] == "no-store"
    broken = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.sqlite'}",
                         "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": SECRET, "TESTING": True})
    r = broken.test_client().get("/healthz")
    assert r.status_code == 503 and r.json == {"ok": False, "error": "database unavailable"}
    assert json.loads(r.data) == r.json

"""A live server (werkzeug, in a thread, free port) serving the demo study and its ACR
variant with tiny clips, and headless Debian Chromium driven by Python Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from flask import Flask

from study_app import create_app, migrate
from study_app.demo.builder import ACTIVE_ONLY, demo_manifest
from tests.live_server import serve
from tests.rater_support import SMALL_SESSION, acr_overrides, make_study

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@dataclass
class LiveServer:
    url: str
    app: Flask
    manifest: Path


def demo_app(tmp: Path, clips: Path) -> tuple[Flask, Path]:
    """A migrated app on a fresh SQLite file in ``tmp`` and the demo manifest pointing at ``clips``."""
    manifest = tmp / "manifest.yaml"
    raw = demo_manifest(clips)
    # A balanced study, as in the other tests (the demo's live study selects pairs actively).
    raw["design"] = {k: v for k, v in raw["design"].items() if k not in ACTIVE_ONLY}
    manifest.write_text(yaml.safe_dump(raw, sort_keys=False))
    url = f"sqlite:///{tmp / 'panelrank.sqlite'}"
    app = create_app({"DATABASE_URL": url, "INSTANCE_DIR": str(tmp / "instance"), "SECRET_KEY": "e2e-secret"})
    migrate.upgrade(url)
    return app, manifest


@pytest.fixture(scope="module")
def live_server(demo_clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    app, manifest = demo_app(tmp_path_factory.mktemp("live"), demo_clips)
    make_study(app, manifest, **SMALL_SESSION)
    make_study(app, manifest, **acr_overrides())
    with serve(app) as base:
        yield LiveServer(base, app, manifest)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("e2e tests need Debian's chromium on PATH (make system-deps installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()

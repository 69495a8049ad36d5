"""The demo: generated clips, the demo study, an organizer login. Reruns reuse what exists."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from flask import Flask

from study_app import accounts, clips, db, migrate
from study_app.manifest import validate
from study_app.studies import create_study, get_study

ROOT = Path(__file__).resolve().parent.parent
DEMO_MANIFEST = ROOT / "examples" / "demo" / "manifest.yaml"
DEMO_EMAIL = "demo@panelrank.local"


@dataclass(frozen=True)
class DemoInfo:
    slug: str
    email: str
    password: str


def demo_manifest(clips_dir: Path) -> dict[str, Any]:
    """The example manifest with its stimulus paths pointing into ``clips_dir``."""
    raw = yaml.safe_load(DEMO_MANIFEST.read_text(encoding="utf-8"))
    for s in raw["stimuli"]:
        s["path"] = str(clips_dir / s["content"] / f"{s['condition']}.mp4")
    return raw


def build(app: Flask, small: bool = False, echo: Callable[[str], Any] = print) -> DemoInfo:
    """Generate clips, migrate, create the demo organizer and study (each only if missing)."""
    inst = Path(app.config["INSTANCE_DIR"])
    inst.mkdir(parents=True, exist_ok=True)
    clips_dir = inst / ("demo-clips-small" if small else "demo-clips")
    raw = demo_manifest(clips_dir)
    size = dict(width=320, height=180, seconds=1) if small else dict(width=1280, height=720, seconds=5)
    echo(f"clips: {clips_dir}")
    clips.generate_demo(clips_dir, contents=tuple(raw["contents"]), fps=25, **size)
    migrate.upgrade(app.config["DATABASE_URL"])
    password = _password(inst)
    with app.app_context(), db.transaction(app) as session:
        organizer = accounts.find_organizer(session, DEMO_EMAIL)
        if organizer is None:
            organizer = accounts.create_organizer(session, DEMO_EMAIL, password, role="admin")
        elif accounts.authenticate(session, DEMO_EMAIL, password) is None:
            # The saved password was lost or edited: make the printed login true again.
            accounts.set_password(organizer, password)
        if get_study(session, raw["slug"]) is None:
            vm = validate(raw, DEMO_MANIFEST)
            create_study(session, vm, organizer_id=organizer.id)
            echo(f"created study '{raw['slug']}'")
        else:
            echo(f"study '{raw['slug']}' exists; reusing it")
    return DemoInfo(slug=raw["slug"], email=DEMO_EMAIL, password=password)


def _password(inst: Path) -> str:
    # Kept in the instance folder so a rerun prints the same login.
    path = inst / "demo-organizer-password.txt"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(9)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password

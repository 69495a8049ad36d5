"""Settings, read from ``PANELRANK_*`` environment variables.

Defaults suit a laptop: a SQLite file under ``instance/``. Production sets
``PANELRANK_ENV=production``, a real ``PANELRANK_SECRET_KEY`` and usually a
PostgreSQL ``PANELRANK_DATABASE_URL``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEFAULT_SECRET_KEY = "dev-insecure-change-me"


def instance_dir() -> Path:
    """Where local state lives (SQLite file, demo clips, caches)."""
    return Path(os.environ.get("PANELRANK_INSTANCE", Path.cwd() / "instance")).resolve()


def from_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Build the Flask config mapping from the environment.

    Parameters
    ----------
    env : mapping, optional
        Defaults to ``os.environ``; tests pass their own.
    """
    env = dict(os.environ if env is None else env)
    inst = Path(env.get("PANELRANK_INSTANCE", instance_dir()))
    production = env.get("PANELRANK_ENV", "development") == "production"
    return {
        "SECRET_KEY": env.get("PANELRANK_SECRET_KEY", DEFAULT_SECRET_KEY),
        "DATABASE_URL": env.get("PANELRANK_DATABASE_URL", f"sqlite:///{inst / 'panelrank.sqlite'}"),
        "INSTANCE_DIR": str(inst),
        # Relative stimulus paths of manifests uploaded through the console resolve here.
        "MEDIA_ROOT": env.get("PANELRANK_MEDIA_ROOT", str(inst / "media")),
        "PRODUCTION": production,
        "MAX_CONTENT_LENGTH": 32 * 1024 * 1024,  # manifests and stimulus CSVs, not videos
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "PROLIFIC_COMPLETE_URL": env.get(
            "PANELRANK_PROLIFIC_COMPLETE_URL", "https://app.prolific.com/submissions/complete?cc={code}"
        ),
    }

"""Settings, read from ``PANELRANK_*`` environment variables.

Defaults suit a laptop: a SQLite file under ``instance/``. Production sets
``PANELRANK_ENV=production`` and usually a PostgreSQL ``PANELRANK_DATABASE_URL``.
The secret key comes from ``PANELRANK_SECRET_KEY`` or, without it, from a random key
that the first start writes to the instance folder (:func:`instance_secret_key`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Any

#: Where the generated secret key is kept, inside the instance folder.
SECRET_KEY_FILE = "secret_key"
#: Shortest secret key accepted in production (session cookies and media tokens are signed with it).
MIN_SECRET_KEY = 16


class InsecureConfigError(RuntimeError):
    """The settings are not safe; the message says which one to change."""


def instance_dir() -> Path:
    """Where local state lives (SQLite file, demo clips, caches, the generated secret key)."""
    return Path(os.environ.get("PANELRANK_INSTANCE", Path.cwd() / "instance")).resolve()


def from_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Build the Flask config mapping from the environment.

    Parameters
    ----------
    env : mapping, optional
        Defaults to ``os.environ``; tests pass their own.

    Returns
    -------
    dict
        Flask settings. ``SECRET_KEY`` is None unless ``PANELRANK_SECRET_KEY`` is set;
        ``create_app`` then reads (or writes) the instance folder's key.
    """
    env = dict(os.environ if env is None else env)
    inst = Path(env.get("PANELRANK_INSTANCE", instance_dir()))
    production = env.get("PANELRANK_ENV", "development") == "production"
    return {
        "SECRET_KEY": env.get("PANELRANK_SECRET_KEY"),
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
        # Throttling (study_app.limits). Counters live in this process unless the storage is shared:
        # several workers or hosts need redis:// or memcached:// here to agree on one count.
        "RATELIMIT_STORAGE_URI": env.get("PANELRANK_RATELIMIT_STORAGE", "memory://"),
        "LOGIN_RATE_LIMIT": env.get("PANELRANK_LOGIN_RATE_LIMIT", "10 per minute; 50 per hour"),
        # A whole lab may reach the rater link from one address: generous.
        "RATER_ENTRY_RATE_LIMIT": env.get("PANELRANK_RATER_ENTRY_RATE_LIMIT", "120 per minute"),
        # Reverse proxies whose X-Forwarded-For names the client (as gunicorn's forwarded_allow_ips).
        # Clip bytes sent by the front web server (study_app.media; docs/production.md).
        "MEDIA_OFFLOAD": env.get("PANELRANK_MEDIA_OFFLOAD", ""),
        "MEDIA_INTERNAL_PREFIX": env.get("PANELRANK_MEDIA_INTERNAL_PREFIX", "/_media/"),
        "TRUSTED_PROXIES": tuple(a.strip() for a in env.get("PANELRANK_TRUSTED_PROXIES", "127.0.0.1,::1").split(",")
                                 if a.strip()),
    }


def instance_secret_key(folder: Path) -> str:
    """The secret key kept in ``folder``, generated and written on first use.

    Parameters
    ----------
    folder : Path
        The instance folder; created if missing.

    Returns
    -------
    str
        The key (64 hex characters when generated here).

    Raises
    ------
    InsecureConfigError
        The file cannot be created, is readable by other users, or is empty or short.
    """
    path = folder / SECRET_KEY_FILE
    if not path.exists():
        try:
            _write_once(path, secrets.token_hex(32))
        except OSError as exc:
            raise InsecureConfigError(
                f"cannot write the secret key file {path} ({exc.strerror or exc}): "
                "set PANELRANK_SECRET_KEY or point PANELRANK_INSTANCE at a writable folder"
            ) from exc
    return _read_key(path)


def _write_once(path: Path, key: str) -> None:
    # The key is written completely under a temporary name (mkstemp: O_EXCL, mode 0600), then
    # linked to its final name; link(2) never replaces a file. Workers starting at once therefore
    # agree: one link wins, the others find its complete file, and nobody reads half a key.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{SECRET_KEY_FILE}.")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process was first: its key is the key
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _read_key(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InsecureConfigError(
            f"the secret key file {path} is readable or writable by other users (mode {mode:o}): "
            f"run `chmod 600 {path}`"
        )
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_SECRET_KEY:
        what = "empty" if not key else f"shorter than {MIN_SECRET_KEY} characters"
        raise InsecureConfigError(
            f"the secret key file {path} is {what}: delete it to have a new key generated "
            "(that logs every organizer out and changes every clip URL) or write a long random key into it"
        )
    return key

"""A throwaway PostgreSQL cluster in a temp dir on a free loopback port.

Shared by the test fixtures (``tests/conftest.py``), the fault test (which restarts it) and
``benchmarks/load.py``; no pytest here, so a script can use it too.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


class PgUnavailable(RuntimeError):
    """PostgreSQL cannot be started here; the message says why (tests skip with it)."""


def pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_pg_user() -> list[str]:
    # initdb refuses to run as root; Debian's package provides the 'postgres' user.
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PgUnavailable("running as root and there is no 'postgres' user to run initdb") from None
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class PgCluster:
    root: Path
    port: int
    bindir: Path
    prefix: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        """The SQLAlchemy base URL (append ``/<database>``)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def _ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args],
                       check=check, capture_output=True)

    def start(self) -> None:
        opts = f"-p {self.port} -h 127.0.0.1 -k {self.root} -F"
        self._ctl("-o", opts, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        """Stop (``immediate`` is a crash: no checkpoint, connections cut) and start again on the same port."""
        self.stop(mode)
        self.start()

    def create_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"{self._plain}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{self.url}/{name}"

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(f"{self._plain}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @property
    def _plain(self) -> str:
        return self.url.replace("postgresql+psycopg", "postgresql")

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> PgCluster:
    """initdb and start a cluster; raises :class:`PgUnavailable` when PostgreSQL or psycopg is missing."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PgUnavailable("psycopg is not installed") from None
    bindir = pg_bin()
    if bindir is None:
        raise PgUnavailable("PostgreSQL is not installed and could not be installed "
                            "(make test installs it with apt-get)")
    prefix = _as_pg_user()
    root = Path(tempfile.mkdtemp(prefix="panelrank-pg-"))
    if prefix:
        shutil.chown(root, "postgres")
    cluster = PgCluster(root, free_port(), bindir, prefix)
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(cluster.data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    cluster.start()
    return cluster

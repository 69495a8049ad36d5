"""Engine and per-request session.

One engine per app; one SQLAlchemy session (one transaction) per request, rolled
back automatically when a view raises, so a failed request never half-writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session as DBSession
from sqlalchemy.orm import sessionmaker

_EXT = "panelrank.db"


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Several gunicorn workers share the file: wait for locks instead of failing at once.
        kwargs["connect_args"] = {"timeout": 30}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    if not _is_memory(dbapi_conn):
        cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _is_memory(dbapi_conn: Any) -> bool:
    rows = dbapi_conn.execute("PRAGMA database_list").fetchall()
    return any(r[1] == "main" and not r[2] for r in rows)


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions[_EXT] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def engine(app: Flask | None = None) -> Engine:
    maker = (app or current_app).extensions[_EXT]
    return maker.kw["bind"]


def get_db() -> DBSession:
    """The session of the current request (or app context), created on first use."""
    if "db" not in g:
        g.db = current_app.extensions[_EXT]()
    return g.db


def _close_session(exc: BaseException | None) -> None:
    db: DBSession | None = g.pop("db", None)
    if db is None:
        return
    if exc is not None or db.in_transaction():
        # Anything not committed explicitly by the view is discarded.
        db.rollback()
    db.close()


@contextmanager
def transaction(app: Flask | None = None) -> Iterator[DBSession]:
    """A standalone session that commits on success and rolls back on error (CLI use)."""
    maker = (app or current_app).extensions[_EXT]
    with maker() as db, db.begin():
        yield db

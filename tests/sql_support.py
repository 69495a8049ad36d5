"""Counting the SQL statements a piece of code sends: the guard against N+1 queries creeping back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy import event

from study_app import db


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """Collect the SQL of every statement ``app``'s engine executes inside the block."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(statement)

    engine = db.engine(app)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)

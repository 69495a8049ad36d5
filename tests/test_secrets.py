"""The secret key: never a literal in the source; without PANELRANK_SECRET_KEY, a random key that the
first start writes to the instance folder (mode 0600) and every later start reuses."""

from __future__ import annotations

import re
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from study_app import config, create_app
from study_app.config import InsecureConfigError

SOURCE = Path(__file__).resolve().parent.parent / "study_app"


@pytest.fixture(autouse=True)
def _no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PANELRANK_SECRET_KEY", raising=False)


def _app(instance: Path, **settings: object) -> Flask:
    return create_app({"DATABASE_URL": f"sqlite:///{instance / 'x.sqlite'}", "INSTANCE_DIR": str(instance),
                       **settings})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_writes_a_private_random_key_and_later_starts_reuse_it(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    first = _app(instance)
    path = instance / config.SECRET_KEY_FILE
    stored = path.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert first.config["SECRET_KEY"] == stored
    assert _mode(path) == 0o600
    assert _app(instance).config["SECRET_KEY"] == stored
    assert path.read_text().strip() == stored  # reused, not rewritten
    assert sorted(p.name for p in instance.iterdir()) == [config.SECRET_KEY_FILE]  # no temporary file left
    # Another instance folder is another installation: another key, so its clip tokens differ.
    assert _app(tmp_path / "other").config["SECRET_KEY"] != stored


def _key_of(folder: str) -> str:
    return config.instance_secret_key(Path(folder))


def test_workers_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    folder = tmp_path / "instance"
    for _ in range(5):  # several rounds: each a fresh folder raced by 8 processes
        with ProcessPoolExecutor(8) as pool:
            keys = set(pool.map(_key_of, [str(folder)] * 32))
        assert keys == {(folder / config.SECRET_KEY_FILE).read_text().strip()}
        assert [p.name for p in folder.iterdir()] == [config.SECRET_KEY_FILE]
        (folder / config.SECRET_KEY_FILE).unlink()


@pytest.mark.parametrize(("content", "mode", "problem"), [
    ("a" * 64, 0o644, r"readable or writable by other users \(mode 644\): run `chmod 600 "),
    ("a" * 64, 0o620, r"readable or writable by other users \(mode 620\)"),
    ("", 0o600, r"secret_key is empty: delete it"),
    ("\n  \n", 0o600, r"secret_key is empty"),
    ("short", 0o600, r"shorter than 16 characters"),
])
def test_a_bad_key_file_is_refused_with_the_reason(tmp_path: Path, content: str, mode: int, problem: str) -> None:
    path = tmp_path / config.SECRET_KEY_FILE
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(InsecureConfigError, match=problem):
        _app(tmp_path)
    assert path.read_text() == content and _mode(path) == mode  # left as found: the operator decides


def test_a_bad_key_file_is_a_one_line_cli_error(tmp_path: Path) -> None:
    from study_app.cli import main

    path = tmp_path / config.SECRET_KEY_FILE
    path.write_text("b" * 64)
    path.chmod(0o644)
    env = {"PANELRANK_INSTANCE": str(tmp_path), "PANELRANK_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}"}
    result = CliRunner().invoke(main, ["list-studies"], env=env)
    assert result.exit_code == 1
    assert f"chmod 600 {path}" in result.output and "Traceback" not in result.output


def test_an_unwritable_instance_folder_says_what_to_set(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InsecureConfigError, match="set PANELRANK_SECRET_KEY or point PANELRANK_INSTANCE"):
        _app(blocker / "instance")


def test_an_explicit_key_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _app(tmp_path, SECRET_KEY="given-by-the-test").config["SECRET_KEY"] == "given-by-the-test"
    monkeypatch.setenv("PANELRANK_SECRET_KEY", "k" * 40)
    assert _app(tmp_path).config["SECRET_KEY"] == "k" * 40
    assert not (tmp_path / config.SECRET_KEY_FILE).exists()


def test_production_without_a_key_uses_the_instance_key(tmp_path: Path) -> None:
    app = _app(tmp_path, PRODUCTION=True)
    assert app.config["SECRET_KEY"] == (tmp_path / config.SECRET_KEY_FILE).read_text().strip()
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_no_secret_key_literal_anywhere_in_the_source() -> None:
    assigned = re.compile(r"""SECRET_KEY["']?\s*[:=,]\s*(?:env\.get\([^)]*,\s*)?["']""")
    offenders = [f"{p.relative_to(SOURCE)}: {line.strip()}"
                 for p in sorted(SOURCE.rglob("*.py")) for line in p.read_text(encoding="utf-8").splitlines()
                 if assigned.search(line) or "dev-insecure" in line]
    assert offenders == []
    assert config.from_env({"PANELRANK_INSTANCE": "/nonexistent"})["SECRET_KEY"] is None

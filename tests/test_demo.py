"""`panelrank demo` builds everything once and reuses it on the next run."""

from __future__ import annotations

from pathlib import Path

from study_app import create_app


def test_demo_builds_and_reuses(tmp_path: Path) -> None:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite'}", "INSTANCE_DIR": str(tmp_path),
                      "TESTING": True})
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "--no-serve", "--small"])
    assert first.exit_code == 0, first.output
    assert "created study 'demo'" in first.output
    assert "/s/demo" in first.output and "/organizer/" in first.output
    login = next(line for line in first.output.splitlines() if "organizer login" in line)
    clips = sorted((tmp_path / "demo-clips-small").rglob("*.mp4"))
    assert len(clips) == 24
    stamps = [c.stat().st_mtime_ns for c in clips]
    second = runner.invoke(args=["demo", "--no-serve", "--small"])
    assert second.exit_code == 0, second.output
    assert "exists; reusing it" in second.output
    assert login in second.output  # same credentials
    assert [c.stat().st_mtime_ns for c in clips] == stamps
    listed = runner.invoke(args=["list-studies"])
    assert listed.output.count("demo\tpc5") == 1

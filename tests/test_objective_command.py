"""The ``command`` adapter: a good answer, and each failure named clearly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from analysis.objective import CommandScorer
from analysis.objective.base import N_AUX, ScorerError

AUX = [0.25] * N_AUX


def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "vqa.py"
    path.write_text("import json, sys, time\n" + body, encoding="utf-8")
    return [sys.executable, str(path)]


def test_good_answer_with_appended_paths(tmp_path: Path) -> None:
    argv = _script(
        tmp_path,
        f"a, b = sys.argv[1:3]\nprint(json.dumps({{'p': 0.75 if a < b else 0.25, 'aux_a': {AUX}, 'aux_b': {AUX}}}))\n",
    )
    scorer = CommandScorer(argv, timeout=20)
    assert scorer.compare("a.mp4", "b.mp4").p == 0.75
    assert scorer.compare("b.mp4", "a.mp4").p == 0.25
    assert scorer.aux("a.mp4") == tuple(AUX)
    assert scorer.version.startswith("1.0+cmd.")
    assert CommandScorer(argv, version="team-7").version == "team-7"


def test_placeholders_and_string_commands(tmp_path: Path) -> None:
    out = tmp_path / "args.json"
    argv = _script(
        tmp_path,
        f"json.dump(sys.argv[1:], open({str(out)!r}, 'w'))\n"
        f"print(json.dumps({{'p': 0.5, 'aux_a': {AUX}, 'aux_b': {AUX}}}))\n",
    )
    scorer = CommandScorer(" ".join([*argv, "--second", "{b}", "--first", "{a}"]))
    scorer.compare("x y.mp4", "z.mp4")
    assert json.loads(out.read_text()) == ["--second", "z.mp4", "--first", "x y.mp4"]


def test_timeout_names_command_and_pair(tmp_path: Path) -> None:
    scorer = CommandScorer(_script(tmp_path, "time.sleep(10)\n"), timeout=0.5)
    with pytest.raises(ScorerError, match=r"vqa\.py.*on pair \(a\.mp4, b\.mp4\) timed out after 0\.5 s"):
        scorer.compare("a.mp4", "b.mp4")


def test_nonzero_exit_reports_status_and_stderr(tmp_path: Path) -> None:
    scorer = CommandScorer(_script(tmp_path, "sys.stderr.write('CUDA out of memory\\n'); sys.exit(3)\n"))
    with pytest.raises(ScorerError, match=r"on pair \(a\.mp4, b\.mp4\) exited with status 3.*CUDA out of memory"):
        scorer.compare("a.mp4", "b.mp4")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("print('p=0.5')\n", "invalid JSON"),
        ("print('[0.5]')\n", "printed list"),
        (f"print(json.dumps({{'p': 0.5, 'aux_a': {AUX[:5]}, 'aux_b': {AUX}}}))\n", "expected 11 values"),
        (f"print(json.dumps({{'p': 2, 'aux_a': {AUX}, 'aux_b': {AUX}}}))\n", "probability"),
        ("print(json.dumps({'p': 0.5}))\n", "missing key"),
    ],
)
def test_bad_output_is_a_clear_error(tmp_path: Path, body: str, message: str) -> None:
    scorer = CommandScorer(_script(tmp_path, body))
    with pytest.raises(ScorerError, match=message) as info:
        scorer.compare("left.mp4", "right.mp4")
    assert "vqa.py" in str(info.value) and "(left.mp4, right.mp4)" in str(info.value)


def test_missing_program(tmp_path: Path) -> None:
    scorer = CommandScorer([str(tmp_path / "no-such-program")])
    with pytest.raises(ScorerError, match="could not start"):
        scorer.compare("a.mp4", "b.mp4")
    with pytest.raises(ValueError, match="empty"):
        CommandScorer([])

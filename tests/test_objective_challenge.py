"""S_real, S_synth, S_obj exactly as PROTOCOL.md §4, and the challenge CSV layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.objective import challenge
from analysis.objective.challenge import (
    M_COLUMNS,
    challenge_score,
    challenge_scores,
    frame_rmse,
    read_real_csv,
    read_synth_csv,
    s_obj,
    s_real,
    s_real_per_video,
    s_synth,
    write_real_csv,
    write_synth_csv,
)


def hand_example() -> tuple[np.ndarray, np.ndarray]:
    """Two videos; a_4 (index 3) is the noise score that enters inverted."""
    p = np.array([0.6, 0.4])
    aux = np.full((2, 11), 0.5)
    aux[0, 3] = 0.2  # little noise → contributes 0.8
    aux[1, 3] = 0.9  # noisy → contributes 0.1
    aux[1, 0] = 1.0
    return p, aux


def test_s_real_by_hand() -> None:
    p, aux = hand_example()
    # video 1: 0.6 + 10 × 0.5 + (1 − 0.2) = 6.4 ; video 2: 0.4 + (1.0 + 9 × 0.5) + (1 − 0.9) = 6.0
    assert s_real_per_video(p, aux) == pytest.approx([6.4 / 12, 6.0 / 12])
    assert s_real(p, aux) == pytest.approx((6.4 + 6.0) / (12 * 2))


def test_s_synth_and_s_obj_by_hand() -> None:
    assert s_synth([0.1, 0.3]) == pytest.approx(5.0)  # 1 / mean(0.1, 0.3)
    assert s_synth([0.0]) == float("inf")
    p, aux = hand_example()
    assert s_obj(s_real(p, aux), s_synth([0.1, 0.3])) == pytest.approx(12.4 / 24 * 5.0)


def test_frame_rmse_uses_the_challenge_scale() -> None:
    a = np.full((4, 4, 3), 100, np.uint8)
    b = np.full((4, 4, 3), 164, np.uint8)
    # (100−128)/128 − (164−128)/128 = −0.5 everywhere.
    assert frame_rmse(a, b) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="shapes differ"):
        frame_rmse(a, b[:2])


def test_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="11 columns"):
        s_real([0.5], [[0.5] * 10])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        s_real([1.5], [[0.5] * 11])
    with pytest.raises(ValueError, match="at least one"):
        s_synth([])


def test_csv_layouts_round_trip(tmp_path: Path) -> None:
    p, aux = hand_example()
    real = pd.DataFrame(np.column_stack([p, aux]), columns=list(M_COLUMNS))
    real.insert(0, "video_i", ["0001", "0002"])
    synth = pd.DataFrame({"video_i": ["s1", "s2"], "rmse": [0.1, 0.3]})
    real_path = write_real_csv(real, tmp_path / "team_real.csv")
    synth_path = write_synth_csv(synth, tmp_path / "team_synth.csv")
    header = real_path.read_text().splitlines()[0]
    assert header == "video_i," + ",".join(f"m_{k}" for k in range(1, 13))
    assert synth_path.read_text().splitlines()[0] == "video_i,rmse"
    back = read_real_csv(real_path)
    assert back["video_i"].tolist() == ["0001", "0002"]  # ids stay strings (leading zeros)
    score = challenge_score("team", back, read_synth_csv(synth_path))
    assert score.s_real == pytest.approx(12.4 / 24)
    assert score.s_synth == pytest.approx(5.0)
    assert score.s_obj == pytest.approx(score.s_real * score.s_synth)
    assert score.to_frame().loc[0, "n_real"] == 2


def test_per_condition_table() -> None:
    p, aux = hand_example()
    real = pd.DataFrame(np.column_stack([p, aux]), columns=list(M_COLUMNS))
    real.insert(0, "video_i", ["a", "b"])
    both = pd.concat([real.assign(condition="x"), real.assign(condition="y", m_1=[1.0, 1.0])])
    synth = pd.DataFrame({"video_i": ["s"] * 2, "rmse": [0.2, 0.1], "condition": ["x", "y"]})
    table = challenge_scores(both, synth).set_index("condition")
    assert table.loc["x", "s_obj"] == pytest.approx(12.4 / 24 * 5.0)
    assert table.loc["y", "s_real"] == pytest.approx((12.4 + 1.0 - 0.6 + 1.0 - 0.4) / 24)
    assert table.loc["y", "s_synth"] == pytest.approx(10.0)


def test_real_rows_from_a_scorer(tmp_path: Path) -> None:
    """m_1 = p(ŷ, x) and m_2..m_12 = aux of ŷ, from any scorer (here a table scorer)."""
    from analysis.objective.base import PairScore

    aux_out = tuple([0.9] * 11)
    aux_in = tuple([0.1] * 11)

    class Fixed:
        name, version = "fixed", "1"

        def features(self, path):
            return {}

        def aux(self, path):
            return aux_out if "out" in str(path) else aux_in

        def compare(self, a, b):
            return PairScore(0.8 if "out" in str(a) else 0.3, self.aux(a), self.aux(b))

    rows = challenge.real_rows(Fixed(), [("v1", "out1.mp4", "in1.mp4")], symmetric=False)
    assert rows.loc[0, "m_1"] == pytest.approx(0.8) and rows.loc[0, "m_12"] == pytest.approx(0.9)
    sym = challenge.real_rows(Fixed(), [("v1", "out1.mp4", "in1.mp4")])
    assert sym.loc[0, "m_1"] == pytest.approx((0.8 + 1 - 0.3) / 2)  # p_sym

"""Small vote frames written out by hand for the analysis tests."""

from __future__ import annotations

import pandas as pd

from analysis import frames


def pairwise_frame(rows, method: str = "pc5") -> pd.DataFrame:
    """A minimal valid pairwise frame from (rater, cond_a, cond_b, pref) tuples."""
    df = pd.DataFrame(rows, columns=["rater", "cond_a", "cond_b", "pref"])
    n = len(df)
    df["study"] = "t"
    df["session"] = df["rater"] + "-s1"
    df["trial"] = df.groupby("rater").cumcount() + 1
    df["content"] = "v0001"
    df["method"] = method
    for col in ("reason", "shown_left", "repeat_of", "gold_expected", "answered_at", "watch_ms", "stalls"):
        df[col] = [None] * n
    return frames.validate(df, "pairwise")

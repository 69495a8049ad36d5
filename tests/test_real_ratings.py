"""Two published ACR studies with every subject's ratings, against SUREAL on the same ratings.

The data (``shared/data/real-ratings``, converted from SUREAL's ``resource/dataset``) are
real raters: their biases and inconsistencies look nothing like a simulator's. Each quantity
panelrank shares a definition with SUREAL agrees to 1e-6:

* per-rater z-scores (SUREAL's ``zscore_mode``: mean and sample sd, ``N − 1``, over the
  rater's scores) and their MOS (``ZscoringMosModel``);
* MOS, the sd of the scores and ``sd/√n`` (``MosModel``);
* the subject model with ``variance="ml"`` — the maximum-likelihood fixed point of
  ``MaximumLikelihoodEstimationModelContentOblivious`` (MLE_CO, the model without content
  ambiguity, as in ``tests/test_normalize.py``): qualities, biases, inconsistencies.

Where the definitions differ on purpose, the tests pin the size of the difference:

* ``subject_model``'s default ``variance="unbiased"`` divides each rater's squared
  residuals by their degrees of freedom instead of by ``n`` — inconsistencies 1.4–4.6%
  larger than MLE_CO's here, qualities moved by < 0.05 of their se;
* the quality se adds the uncertainty of the biases the quality was corrected by; SUREAL's
  ``1/sqrt(Σ 1/v²)`` leaves it out (ratio 1.0006–1.0009 on these complete designs);
* the MOS interval is Student-t, ``t(0.975, n−1)·sd/√n``; SUREAL's ``quality_scores_ci95``
  is ``1.95996·sd/√n``.
"""

from __future__ import annotations

import contextlib
import io
import unicodedata

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import datasets, frames, mos, normalize
from tests.shared_data import DATA as SHARED_DATA

pytest.importorskip("sureal")
from sureal.dataset_reader import RawDatasetReader
from sureal.subjective_model import (
    MaximumLikelihoodEstimationModelContentOblivious,
    MosModel,
    SubjectiveModel,
    ZscoringMosModel,
)

DATA = SHARED_DATA / "real-ratings"
#: ratings, stimuli, subjects, contents (the data's README).
STUDIES = {"nflx-public": (2054, 79, 26, 9), "vqeg-hd3": (1728, 72, 24, 8)}
TOL = 1e-6

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="real-ratings data not available")


@pytest.fixture(scope="module", params=list(STUDIES))
def study(request):
    """The study's ratings frame and SUREAL's results on the same ratings."""
    name = request.param
    votes = datasets.read_ratings_csv(DATA / name / "ratings.csv", method="acr5")
    ds, keys = normalize.sureal_dataset(votes)
    reader = RawDatasetReader(ds)
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
        ref = {
            "mos": MosModel(reader).run_modeling(),
            "zmos": ZscoringMosModel(reader).run_modeling(),
            "z": SubjectiveModel._get_opinion_score_3darray_with_preprocessing(reader, zscore_mode=True),
            "mle_co": MaximumLikelihoodEstimationModelContentOblivious(reader).run_modeling(),
        }
    return name, votes, keys, reader._get_list_observers(), ref


def test_the_studies_load_as_ratings_frames(study):
    name, votes, keys, observers, _ = study
    n_ratings, n_stimuli, n_subjects, n_contents = STUDIES[name]
    assert frames.detect_kind(votes) == "ratings" and len(votes) == n_ratings
    assert len(keys) == n_stimuli and len(observers) == n_subjects and votes["content"].nunique() == n_contents
    assert votes.groupby(["content", "cond"]).size().eq(n_subjects).all()  # complete designs
    assert (votes["study"] == name).all() and set(votes["score"]) <= {1, 2, 3, 4, 5}
    assert "stimulus" in votes.columns  # other columns kept


def test_zscores_agree_with_sureal(study):
    _, votes, keys, observers, ref = study
    z = normalize.zscore(votes).pivot_table(index=["content", "cond"], columns="rater", values="score_norm")
    sureal_z = ref["z"]["opinion_score_3darray"]
    assert sureal_z.shape == (len(keys), len(observers), 1)
    np.testing.assert_allclose(z.loc[keys, observers].to_numpy(), sureal_z[:, :, 0], rtol=0, atol=TOL)
    zmos = mos.mos(votes, by=("content", "cond"), ci="t", normalize="zscore").table.set_index(["content", "cond"])
    np.testing.assert_allclose(zmos.loc[keys, "mos"], ref["zmos"]["quality_scores"], rtol=0, atol=TOL)


def test_mos_agrees_with_sureal(study):
    _, votes, keys, _, ref = study
    t = mos.mos(votes, by=("content", "cond"), ci="t").table.set_index(["content", "cond"]).loc[keys]
    np.testing.assert_allclose(t["mos"], ref["mos"]["quality_scores"], rtol=0, atol=TOL)
    np.testing.assert_allclose(t["sd"], ref["mos"]["quality_ambiguity"], rtol=0, atol=TOL)
    np.testing.assert_allclose(t["sd"] / np.sqrt(t["n"]), ref["mos"]["quality_scores_std"], rtol=0, atol=TOL)
    # Different on purpose: Student-t, not SUREAL's normal 1.95996·sd/√n.
    half = stats.t.ppf(0.975, t["n"] - 1) * t["sd"] / np.sqrt(t["n"])
    # Cut at the ends of the 1..5 scale, where a mean cannot go.
    np.testing.assert_allclose(t["ci_high"], np.minimum(t["mos"] + half, 5), rtol=1e-9)
    np.testing.assert_allclose(t["ci_low"], np.maximum(t["mos"] - half, 1), rtol=1e-9)
    q = stats.t.ppf(0.975, t["n"] - 1).astype(float)
    np.testing.assert_allclose(half, q / 1.95996 * np.asarray(ref["mos"]["quality_scores_ci95"][1]), rtol=1e-9)


def test_subject_model_ml_agrees_with_sureal_mle_co(study):
    _, votes, keys, observers, ref = study
    mle = ref["mle_co"]
    fit = normalize.subject_model(votes, variance="ml")
    assert fit.converged
    stim = fit.stimuli.set_index(["content", "cond"]).loc[keys]
    raters = fit.raters.set_index("rater").loc[mle["observers"]]
    assert list(mle["observers"]) == list(observers)
    np.testing.assert_allclose(stim["quality"], mle["quality_scores"], rtol=0, atol=TOL)
    np.testing.assert_allclose(raters["bias"], mle["observer_bias"], rtol=0, atol=TOL)
    np.testing.assert_allclose(raters["inconsistency"], mle["observer_inconsistency"], rtol=0, atol=TOL)
    # Different on purpose: our se includes the uncertainty of the biases.
    ratio = stim["se"].to_numpy() / np.asarray(mle["quality_scores_std"])
    assert (ratio >= 1).all() and ratio.max() < 1.002


def test_subject_model_default_differs_from_mle_co_by_its_degrees_of_freedom(study):
    """The default's v is the dof-corrected one: a few per cent above ML; q barely moves."""
    _, votes, keys, _, ref = study
    mle = ref["mle_co"]
    fit = normalize.subject_model(votes)
    stim = fit.stimuli.set_index(["content", "cond"]).loc[keys]
    raters = fit.raters.set_index("rater").loc[mle["observers"]]
    ratio = raters["inconsistency"].to_numpy() / np.asarray(mle["observer_inconsistency"])
    assert ratio.min() > 1.01 and ratio.max() < 1.05
    shift = np.abs(stim["quality"].to_numpy() - np.asarray(mle["quality_scores"]))
    assert shift.max() > 1e-4 and (shift / stim["se"].to_numpy()).max() < 0.05


def test_ratings_csv_ids_are_text(tmp_path):
    nfd = unicodedata.normalize("NFD", "café")
    path = tmp_path / "study" / "ratings.csv"
    path.parent.mkdir()
    path.write_text(f"content,condition,subject,score\n{nfd},NA,None,4\ncafé,NA,null,5\ncafé,nan,None,2\n",
                    encoding="utf-8")
    votes = datasets.read_ratings_csv(path, method="acr5")
    assert votes["study"].unique().tolist() == ["study"]
    assert votes["rater"].tolist() == ["None", "null", "None"] and votes["trial"].tolist() == [1, 1, 2]
    assert votes["cond"].tolist() == ["NA", "NA", "nan"] and set(votes["content"]) == {"café"}
    assert mos.mos(votes, ci="t").table.set_index("cond").loc["NA", "mos"] == 4.5
    with pytest.raises(frames.FrameError, match="outside"):
        datasets.ratings_frame(pd.DataFrame({"content": ["c"], "condition": ["A"], "subject": ["s"], "score": [9]}),
                               method="acr5")
    with pytest.raises(KeyError, match="subject"):
        datasets.ratings_frame(pd.DataFrame({"content": ["c"]}), method="acr5")

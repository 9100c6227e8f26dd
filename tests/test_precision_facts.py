"""The precision chapter's facts (shortbias_lib.chapters.hypergrad_precision) on small synthetic results."""

from pathlib import Path

import numpy as np
import pytest

from shortbias_lib.experiments.precision import experiment as precision, analysis as precision_analysis
from shortbias_lib.chapters import hypergrad_precision as precision_facts

from test_precision import _fake


def _summarised(*args, **kwargs):
    arrays = _fake(*args, **kwargs)
    arrays.update(precision_analysis.summary(arrays))
    return arrays


def test_differences_facts_quote_the_worst_float32_horizon_and_the_chosen_words():
    arrays = _summarised([1e-4, 0.3, 0.5], [1e-7, 0.2, 1e-4])
    facts = precision_facts.differences_facts(arrays, archived=True)
    assert facts["hp_shown"].data == "the archived result"
    assert (facts["hp_T_first"], facts["hp_T_f32_max"]) == (100, 5000)
    assert facts["hp_f32_first"] == pytest.approx(1e-4) and facts["hp_f32_max"] == pytest.approx(0.5)
    assert facts["hp_headline"].data == precision_analysis.headline(arrays)
    assert facts["hp_conclusion"].data == precision_analysis.conclusion(arrays)
    assert precision_facts.differences_facts(arrays, archived=False)["hp_shown"].data == "this page's live run"


def test_split_horizons_need_one_float32_computation_on_each_side_of_the_tolerance():
    def row(horizon, *values):
        return dict(zip(("horizon", "float32", "float32_double", "float32_perturbed"), (horizon, *values)))

    rows = [row(100, 1e-5, 1e-5, 1e-5), row(1000, 0.3, 1e-3, 0.2), row(5000, 0.3, 0.4, 0.5)]
    assert precision_facts.split_horizons(rows) == [1000]
    assert precision_facts.split_horizons(rows, tol=1e-6) == []


def test_roundoff_facts_say_when_no_horizon_splits():
    facts = precision_facts.roundoff_facts(_summarised([1e-4, 0.3], [1e-7, 0.2]))
    assert facts["hp_lottery"].data.startswith("In this result the float32 computations agree with each other")


def test_departure_sentences_find_the_first_step_above_the_roundoff_level():
    stays = np.full(10, 1e-7)
    leaves = np.array([1e-7] * 4 + [1e-4, 1e-3, 5e-2, 1e-2])
    text = precision_facts.departure_sentences({"steady": stays, "jumpy": leaves})
    assert "The steady run stayed within 1.0e-07 of float64 for all 10 steps." in text
    assert ("The jumpy run left float64's path at step 5: its gap, at most 1.0e-07 over all earlier steps, "
            "was 1.0e-04 at that step (a factor 1000 in one step), and it then grew to 5.0%") in text


def test_the_banner_names_the_archive_or_warns_that_it_is_missing():
    meta = {"profile": "archive", "seed": 0, "device": "cpu", "time_utc": "t", "git_commit": "c", "torch": "2",
            "config": {"horizons": [100, 1000], "objective_examples": 1000, "perturbed_runs": 3,
                       "perturbed_runs_float32": 1, "perturbation": 1e-7, "batch_resamples": 1}}
    path = precision.archive_path(0)
    banner = precision_facts.result_banner(path, ({}, meta))
    assert banner.startswith("**Archived result** `archive/")
    assert banner.endswith(f"Regenerate it with `{precision.ARCHIVE_COMMAND}`.")
    assert "1 other minibatch sequence." in banner and "horizons 100, 1000" in banner
    warning = precision_facts.result_banner(Path("missing.npz"), None)
    assert warning.startswith("```{warning}") and "`missing.npz` is missing" in warning

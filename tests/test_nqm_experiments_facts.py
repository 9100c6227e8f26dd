"""The facts of the chapter nqm_experiments (shortbias_lib.chapters.nqm_experiments), on small
problems: each number against an independent computation, each verdict both ways."""

import numpy as np
import pytest
import torch

from shortbias_lib.experiments import figure3 as nq
from shortbias_lib.chapters import nqm_experiments as facts
from shortbias_lib.nqm.dynamics import dynamics
from shortbias_lib.nqm.problem import make_problem

torch.set_num_threads(1)

SMALL = dict(n=50, kappa=100.0, horizon=30)   # small enough to fit in seconds, and 63.86 is reachable


@pytest.fixture(scope="module")
def small_c0():
    return nq.calibrate_c0(iters=30, **SMALL)


@pytest.fixture(scope="module")
def small_figure3(small_c0):
    """figure3 on the small problem, with the arrays run_figure3 adds (kappa recalibration made up)."""
    fig3 = nq.figure3(setup={**SMALL, "c0": small_c0}, fit={"max_iter": 20})
    fig3.update(seconds=np.array(1.5), kappas=np.array([30.0, 100.0, 300.0]),
                kappa_c0=np.array([40.0, small_c0 * 1.0001, 70.0]),
                kappa_fixed=np.array([30.0, float(fig3["final_losses"][2]), np.nan]),
                kappa_optimized=np.array([np.nan, 100.0, np.nan]))
    return fig3


def test_problem_facts_check_the_calibration_and_compute_floor_and_start(small_c0):
    problem = make_problem(c0=round(small_c0, 2), **SMALL)
    out = facts.problem_facts(problem, calibration_iters=30)
    assert out["c0_calibrated"] == pytest.approx(small_c0, rel=1e-6)
    # sigma2 = 1/h, so the floor is n/2; the start is 1/2 c0^2 sum h
    assert out["noise_floor"] == pytest.approx(SMALL["n"] / 2)
    assert out["initial_loss"] == pytest.approx(0.5 * round(small_c0, 2) ** 2 * float(problem.h.sum()))
    assert out["paper_greedy"] == 63.86
    with pytest.raises(ValueError, match="calibrated c0"):
        facts.problem_facts(make_problem(c0=1.01 * small_c0, **SMALL), calibration_iters=30)


def test_figure1_facts_raise_unless_conservative_leads_then_trails():
    conservative, aggressive = np.array([5.0, 2.0, 1.5, 1.2]), np.array([5.0, 3.0, 2.5, 0.2])
    out = facts.figure1_facts(conservative, aggressive, 2)
    assert (out["fig1_c_k"], out["fig1_a_k"], out["fig1_a_T"]) == (1.5, 2.5, 0.2)
    with pytest.raises(ValueError, match="Figure 1"):
        facts.figure1_facts(aggressive, conservative, 2)   # roles swapped
    with pytest.raises(ValueError, match="Figure 1"):
        facts.figure1_facts(conservative, np.array([5.0, 3.0, 2.5, 1.3]), 2)   # never catches up


def _parabolas(best_index, n=9):
    """One curve per entry of ``best_index``, with its minimum there."""
    x = np.arange(n)
    return np.array([1.0 + (x - i) ** 2 for i in best_index])


def test_figure2_facts_ratios_edges_and_counterexamples():
    lrs = 2.0 ** np.arange(9)
    solid, dashed = _parabolas([3, 2]), _parabolas([5, 8])
    out = facts.figure2_facts([10, 50], lrs, solid, dashed, 256.0)
    assert out["fig2_n_edge"] == 1 and out["fig2_ratio_phrase"].data == "at least 4.0 to 64.0"
    assert "For 1 of the 2 dashed curves" in out["fig2_edge_sentence"].data
    assert (out["fig2_solid_lr_first"], out["fig2_solid_lr_last"]) == (8.0, 4.0)
    inside = facts.figure2_facts([10, 50], lrs, solid, _parabolas([5, 6]), 256.0)
    assert inside["fig2_edge_sentence"].data == "All dashed minima lie inside the grid."
    assert inside["fig2_ratio_phrase"].data == "4.0 to 16.0"
    with pytest.raises(ValueError, match="larger rate"):
        facts.figure2_facts([10, 50], lrs, solid, _parabolas([5, 1]), 256.0)
    with pytest.raises(ValueError, match="smaller fixed rates"):
        facts.figure2_facts([10, 50], lrs, _parabolas([2, 3]), _parabolas([5, 6]), 256.0)
    with pytest.raises(ValueError, match="solid minimum"):
        facts.figure2_facts([10, 50], lrs, _parabolas([8, 2]), _parabolas([8, 6]), 256.0)
    with pytest.raises(ValueError, match="finite"):
        facts.figure2_facts([10, 50], lrs, solid, np.where(dashed > 50, np.inf, dashed), 256.0)


def test_relative_gap_has_no_negative_zero():
    assert facts.relative_gap(99.9996, 100.0) == 0.0 and f"{facts.relative_gap(99.9996, 100.0):+.1%}" == "+0.0%"
    assert facts.relative_gap(105.0, 100.0) == pytest.approx(0.05)


def test_kappa_choice_sentence_says_whether_the_choice_is_the_closest():
    chosen = facts.kappa_choice_sentence(2000.0, [300.0, 2000.0, 1e4], [40.0, 42.0, np.nan], 42.19)
    assert "it is the one whose calibrated setup" in chosen and "(300, 2000)" in chosen
    other = facts.kappa_choice_sentence(2000.0, [300.0, 2000.0], [42.1, 45.0], 42.19)
    assert "It is not the value" in other and "that is κ = 300" in other


def test_figure3_facts_against_the_arrays(small_figure3, small_c0):
    fig3, problem = small_figure3, make_problem(c0=small_c0, **SMALL)
    out = facts.figure3_facts(fig3, problem)
    final = dict(zip(fig3["schedules"], fig3["final_losses"]))
    assert out["final_greedy"] == pytest.approx(63.86, rel=1e-6)
    assert out["absgap_fixed"] == pytest.approx(abs(final["fixed"] / 42.19 - 1))
    # the replayed schedule: the noisy optimized one under the bound at the recalibrated c0
    replay = make_problem(c0=small_c0 * 1.0001, **SMALL)
    expected = dynamics(*replay.arrays, torch.as_tensor(fig3["alphas"][0, 0]), torch.as_tensor(fig3["mus"][0, 0]),
                        bound=True)[0][-1]
    assert out["opt_cross"] == pytest.approx(float(expected), rel=1e-12)
    assert out["c0_change"] == pytest.approx(1e-4, rel=1e-6)
    assert (out["kappa_min"], out["kappa_max"], out["opt_kappas"].data) == (30.0, 100.0, "100")
    assert "so the difference is where the fit stops" in out["opt_cross_md"].data   # 100 is far above the replay
    assert "It is not the value" not in out["kappa_choice_md"].data                 # 100 is exact
    assert out["fig3_seconds"] == 1.5


def test_figure3_facts_verdicts(small_figure3, small_c0):
    problem = make_problem(c0=small_c0, **SMALL)
    cross = facts.figure3_facts(small_figure3, problem)["opt_cross"]
    for optimized, words in ((cross * 0.5, "the rounding, not the fit"), (cross, "hardly matters")):
        fig3 = {**small_figure3, "kappa_optimized": np.array([np.nan, optimized, np.nan])}
        assert words in facts.figure3_facts(fig3, problem)["opt_cross_md"].data
    swapped = {**small_figure3, "final_losses": small_figure3["final_losses"][[1, 0, 2]]}
    with pytest.raises(ValueError, match="ordered"):
        facts.figure3_facts(swapped, problem)
    broken = {**small_figure3, "max_excess_over_initial": small_figure3["max_excess_over_initial"] + 1.0}
    with pytest.raises(ValueError, match="bound"):
        facts.figure3_facts(broken, problem)


def test_figure3a_and_3b_facts_and_their_counterexamples(small_figure3):
    out = facts.figure3a_facts(small_figure3, step=10)
    high = small_figure3["loss_high50"][0]
    assert out["high_greedy_50"] == pytest.approx(high[1, 10] / high[1, 0])
    swapped = {**small_figure3, "loss_low50": small_figure3["loss_low50"][:, [1, 0, 2]]}
    with pytest.raises(ValueError, match="3\\(a\\)"):
        facts.figure3a_facts(swapped, step=10)
    det = facts.figure3b_facts(small_figure3)
    assert det["det_ratio"] == pytest.approx(det["det_optimized"] / det["det_greedy"])
    assert det["det_winner"].data in ("**greedy**", "**fixed**")
    worse = small_figure3["final_losses_deterministic"] * np.array([1.02, 1.0, 1.0])
    with pytest.raises(ValueError, match="within 1%"):
        facts.figure3b_facts({**small_figure3, "final_losses_deterministic": worse})


def test_sensitivity_facts_judge_the_geometric_spectrum():
    settings = [("extreme", 300.0), ("extreme", 2000.0), ("extreme", 100.0), ("geometric", 2000.0)]
    c0s = np.array([40.0, 41.0, 42.0, 43.0])
    far = facts.sensitivity_facts(settings, c0s, np.array([42.0, 42.4, 10.0, 30.0]))
    assert (far["sens_fixed_min"], far["sens_fixed_max"], far["sens_kappa_max"]) == (42.0, 42.4, 2000.0)
    assert "below the paper's 42.19" in far["sens_geometric"].data and "far from" in far["sens_geometric"].data
    near = facts.sensitivity_facts(settings, c0s, np.array([42.0, 42.4, 10.0, 43.0]))
    assert "above" in near["sens_geometric"].data and "far from" not in near["sens_geometric"].data
    assert "only in the `quick`" in facts.sensitivity_facts(settings[:2], c0s[:2], [42.0, 42.4])["sens_geometric"].data
    assert "| extreme | 300 | 40.00 | 42.00 |" in facts.sensitivity_table(settings, c0s, [42.0, 42.4, 10.0, 30.0])


def test_adam_facts_compare_with_the_converged_fit():
    assert "4.500, above the converged fit's 4.250" in facts.adam_facts([4.6, 4.5], 4.25)["adam_phrase"].data
    assert "below" in facts.adam_facts([4.0], 4.25)["adam_phrase"].data
    assert "smoke" in facts.adam_facts([], 4.25)["adam_phrase"].data

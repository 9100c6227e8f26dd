"""The facts of the chapter nqm_prediction (shortbias_lib.chapters.nqm_prediction) on small
made-up measurements and predictions: each number against a direct computation, each verdict
both ways."""

import numpy as np
import pytest

from shortbias_lib.chapters import nqm_prediction as facts
from shortbias_lib.nqm.prediction import ALT_FLOORS, FLOOR


def _prediction(log10_beta, log10_alpha0, loss_ratio, beta_ratio=None, final_loss=(2.0, 1.0, 0.5)):
    log10_beta = np.asarray(log10_beta, dtype=float)
    return {"log10_beta": log10_beta, "log10_alpha0": np.asarray(log10_alpha0, dtype=float),
            "loss_ratio": loss_ratio, "final_loss": np.asarray(final_loss),
            "beta_ratio": 10 ** (log10_beta[0] - log10_beta[-1]) if beta_ratio is None else beta_ratio}


def _rows(betas, lows, highs, alpha0=(0.1, 0.1, 0.1)):
    return [{"horizon": h, "beta": b, "beta_low": lo, "beta_high": hi, "beta_edge": "", "alpha0": a,
             "final_train_loss": 0.01 * (3 - i)}
            for i, (h, b, lo, hi, a) in enumerate(zip((100, 1000, 20000), betas, lows, highs, alpha0))]


CLAIMS = {"beta_ratio": 100.0, "beta_ratio_interval": (20.0, 500.0), "loss_ratio": 30.0,
          "loss_ratio_interval": (10.0, 60.0), "trained_loss_ratio": 25.0}


def _predictions(main, alt_ratios=(3.0, 7.0)):
    return {FLOOR: (None, None, main),
            **{f: (None, None, _prediction([0, 0, 0], [-1, -1, -1], r)) for f, r in zip(ALT_FLOORS, alt_ratios)}}


def test_trend_names_the_direction_over_horizons():
    assert facts.trend([10.0, 1.0, 1.0]) == "falls" and facts.trend([1.0, 2.0]) == "rises"
    assert facts.trend([1.0, 3.0, 2.0]) == "is not monotone" and facts.trend([2.0, 2.0]) == "is not monotone"


def test_alpha_sentence_three_cases():
    assert "2 to 4 times smaller" in facts.alpha_sentence(np.array([2.0, 4.0]))
    assert "2 to 4 times larger" in facts.alpha_sentence(np.array([0.25, 0.5]))
    assert "not pinned down" in facts.alpha_sentence(np.array([0.5, 2.0]))


def test_verdict_three_cases():
    assert "not even its direction" in facts.verdict(False, 3, 3, True, True, 100, 100)
    assert "both the direction and the size" in facts.verdict(True, 3, 3, True, True, 100, 100)
    for case in ((True, 2, 3, True, True), (True, 3, 3, False, True), (True, 3, 3, True, False)):
        sentence = facts.verdict(*case, 1234.0, 100.0)
        assert "direction of the network's bias, not its size" in sentence and "1,234 predicted" in sentence


def test_comparison_facts_against_direct_computation():
    rows = _rows([10.0, 1.0, 0.1], [5.0, 0.5, 0.01], [20.0, 2.0, 0.2], alpha0=(0.1, 0.2, 0.4))
    main = _prediction([1.0, 0.5, -2.5], [-2.0, -2.0, -2.0], 30.0)      # beta 10, 3.16, 0.003
    replicate = _prediction([1.0, 0.0, -2.0], [-1.5, -2.0, -2.0], 40.0)
    out = facts.comparison_facts(rows, CLAIMS, _predictions(main), replicate, "")
    assert out["np_pred_trend"] == out["np_meas_trend"] == "falls" and out["np_trend_verdict"] == "agree"
    assert out["np_inside"] == 1 and out["np_rep_inside"] == 3 and out["np_H"] == 3
    assert out["np_worst_T"] == 20000 and out["np_worst_gap"] == pytest.approx(10 ** 1.5)
    assert out["np_pred_beta_ratio"] == pytest.approx(10 ** 3.5)
    assert out["np_loss_verdict"] == "inside" and out["np_loss_factor"] == pytest.approx(1.0)
    assert (out["np_alt_loss_low"], out["np_alt_loss_high"]) == (3.0, 7.0)
    assert out["np_rep_beta_factor"] == pytest.approx(10 ** 0.5)
    assert out["np_rep_alpha_factor"] == pytest.approx(10 ** 0.5)
    # network over prediction: 0.1/0.01 .. 0.4/0.01 and 0.1/10**-1.5 (3.2): all above 1
    assert "3.2 to 40 times smaller" in out["np_alpha_sentence"].data
    assert out["np_edges"].data.startswith("No measured optimum")
    assert "not its size: 1 of 3" in out["np_verdict"].data
    assert out["np_meas_final"] == pytest.approx(0.01) and out["np_final_excess"] == 0.5
    outside = facts.comparison_facts(rows, CLAIMS, _predictions(_prediction([-1, 0.5, 1], [-2] * 3, 90.0)),
                                     replicate, "Edge.")
    assert outside["np_loss_verdict"] == "outside" and outside["np_trend_verdict"] == "disagree"
    assert "not even its direction" in outside["np_verdict"].data and outside["np_edges"].data == "Edge."


def test_measurement_facts_coverage_wording_and_correlation():
    m = {"top_values": np.array([50.0, 20.0, 5.0]), "noise_corr": np.array([[1.0, -0.3], [-0.3, 1.0]]),
         "total_noise": np.array(2.0), "loss": np.array(0.4)}
    info = {"dropped_directions": 0.25, "dropped_grad2": 0.01, "noise_covered": 0.8, "initial_excess": 3.0}
    nqm = (np.ones(7),)
    out = facts.measurement_facts(m, {FLOOR: (nqm, info, None)})
    assert out["np_floor"] == pytest.approx(FLOOR * 50.0) and out["np_k"] == 3 and out["np_dims"] == 7
    assert out["np_offdiag"] == pytest.approx(0.3) and out["np_dropped_dirs"] == 25.0
    assert out["np_noise_cov_md"].data.startswith("carry 80% of it")
    over = facts.measurement_facts({**m, "noise_corr": np.ones((1, 1))},
                                   {FLOOR: (nqm, {**info, "noise_covered": 1.3}, None)})
    assert over["np_noise_cov_md"].data.startswith("add up to 130% of it") and over["np_offdiag"] == 0.0


def test_later_facts_say_whether_the_noise_fell():
    point = lambda step, noise: {"step": step, "top_values": np.array([9.0 - step / 1000]),  # noqa: E731
                                 "total_noise": noise, "grad_norm2": 1.0, "loss": 0.1}
    fell = facts.later_facts([point(0, 2.0), point(2000, 1.0)])
    assert fell["np_later_T"] == 2000 and fell["np_later_lam"] == 7.0
    assert fell["np_noise_sentence"].data.startswith("The noise shrinks")
    rose = facts.later_facts([point(0, 1.0), point(2000, 1.0)])
    assert rose["np_noise_sentence"].data.startswith("The noise does not shrink")
    table = facts.later_table([point(0, 2.0)], {"alpha0": 0.05, "beta": 1.5})
    assert "$\\alpha_0$ = 0.05, $\\beta$ = 1.5" in table and "| 0 | 0.1 | 1 | 9 | 2 |" in table


def test_comparison_table_one_row_per_horizon():
    rows = _rows([10.0, 1.0, 0.1], [5.0, 0.5, 0.01], [20.0, 2.0, 0.2])
    rows[0]["beta_edge"] = "upper"
    main = _prediction([1.0, 0.5, -2.0], [-2.0, -2.0, -2.0], 30.0)
    table = facts.comparison_table(rows, _predictions(main), main).splitlines()
    assert len(table) == 2 + 3 and "10 [5, 20] (upper end)" in table[2] and "| 0.01 |" in table[4]

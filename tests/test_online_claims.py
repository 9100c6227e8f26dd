"""Section 3.3's claims decided from runs: the criteria of shortbias_lib.experiments.online.claims on
small made-up runs whose answers are known."""

import math

import numpy as np
import pytest

from shortbias_lib.experiments.online import claims as online_claims
from shortbias_lib.experiments.online.record import OnlineRun

STEPS, ADAPT_UNTIL = 100, 50


def _run(mode, lr, eff, final_loss=0.1, test_error=0.02, eval_losses=None, diverged_step=-1):
    """An OnlineRun of STEPS steps whose effective rate is ``eff`` (a number or an array)."""
    eff = np.broadcast_to(np.asarray(eff, dtype=float), (STEPS,)).copy()
    evals = np.linspace(2.0, final_loss, 11) if eval_losses is None else np.asarray(eval_losses, float)
    return OnlineRun(label=f"{mode} {lr}", mode=mode, init_lr=lr, init_momentum=0.9, eff_lr=eff,
                     momentum=np.full(STEPS, 0.9), losses=np.ones(STEPS),
                     eval_steps=np.arange(evals.size) * 10, eval_losses=evals,
                     diverged=diverged_step >= 0, diverged_step=diverged_step,
                     final_train_loss=final_loss, test_error=test_error)


def _runs(*runs):
    return {f"{r.mode}{r.init_lr}": r for r in runs}


BASE = _run("baseline", 0.1, 1.0, final_loss=0.01, test_error=0.02)   # alpha_eff = 0.1 / (1 - 0.9) = 1


def test_the_papers_picture_satisfies_every_claim():
    """Stochastic runs from 1e-3 and 1e-1 both settle near 0.01 (a hundredth of the baseline's
    rate) and end worse; deterministic runs peak above the baseline's rate and break down."""
    collapse = np.r_[np.geomspace(0.5, 0.012, 40), np.full(STEPS - 40, 0.01)]
    runs = _runs(BASE, _run("stochastic", 1e-3, collapse, final_loss=0.05),
                 _run("stochastic", 1e-1, collapse * 1.5, final_loss=0.06),
                 _run("deterministic", 1e-2, np.geomspace(0.5, 5.0, STEPS), diverged_step=70),
                 _run("deterministic", 1e-1, 3.0, eval_losses=[2, 1, 0.5, 0.4, 1.2, 0.3]))
    claims = online_claims.decide(runs, ADAPT_UNTIL)
    assert claims.init_spread == pytest.approx(100)
    assert claims.settled_spread == pytest.approx(1.5)
    assert claims.settled[1e-3] == pytest.approx(0.01)
    assert claims.alike and claims.collapse and claims.worse and claims.large and claims.unstable
    assert claims.loss_over_base[1e-3] == pytest.approx(5)
    assert claims.below_step[1e-3] == np.flatnonzero(collapse < 0.1)[0]
    assert claims.det_unstable == {1e-2: "diverged at step 70", 1e-1: "spike at step 40"}


def test_each_claim_fails_on_its_counterexample():
    """Rates that stay apart, a run that keeps the baseline's rate and wins, a deterministic
    run that stays small and trains smoothly: each breaks the claim it is about."""
    runs = _runs(BASE, _run("stochastic", 1e-3, 0.005, final_loss=0.05),
                 _run("stochastic", 1e-1, 1.0, final_loss=0.005),
                 _run("deterministic", 1e-2, 0.5))
    claims = online_claims.decide(runs, ADAPT_UNTIL)
    assert claims.settled_spread == pytest.approx(200)
    assert claims.alike is False and claims.collapse is False and claims.worse is False
    assert claims.large is False and claims.unstable is False
    assert claims.below_step == {1e-3: 0, 1e-1: -1}
    assert claims.det_unstable == {1e-2: ""}


def test_missing_runs_leave_claims_undecided():
    claims = online_claims.decide(_runs(BASE, _run("stochastic", 1e-2, 0.01)), ADAPT_UNTIL)
    assert claims.alike is None and claims.large is None and claims.unstable is None
    assert claims.collapse is True and math.isnan(claims.settled_spread)
    with pytest.raises(ValueError, match="baseline"):
        online_claims.decide(_runs(_run("stochastic", 1e-2, 0.01)), ADAPT_UNTIL)


def test_alike_needs_initial_rates_further_apart_than_its_factor():
    """Two runs started a factor 5 apart that stay 5 apart prove nothing about (i)."""
    runs = _runs(BASE, _run("stochastic", 1e-2, 0.01), _run("stochastic", 5e-2, 0.05))
    claims = online_claims.decide(runs, ADAPT_UNTIL)
    assert claims.init_spread == pytest.approx(5) and claims.alike is None


def test_a_run_diverged_before_settling_has_no_settled_rate_and_breaks_alike():
    eff = np.full(STEPS, 0.01)
    eff[45:] = np.nan
    runs = _runs(BASE, _run("stochastic", 1e-3, 0.01), _run("stochastic", 1e-1, eff, diverged_step=45))
    claims = online_claims.decide(runs, ADAPT_UNTIL)
    assert math.isnan(claims.settled[1e-1]) and claims.alike is False


def test_chance_level_counts_as_unstable():
    chance = math.log(10)
    runs = _runs(BASE, _run("deterministic", 1e-2, 5.0, eval_losses=[2.0, 1.0, chance, chance]))
    assert online_claims.decide(runs, ADAPT_UNTIL).det_unstable == {1e-2: "chance from step 20"}


def test_claims_rows_name_every_verdict():
    runs = _runs(BASE, _run("stochastic", 1e-3, 0.01, final_loss=0.05), _run("stochastic", 1e-1, 0.012))
    rows = online_claims.claims_rows(online_claims.decide(runs, ADAPT_UNTIL))
    assert [row[3] for row in rows] == ["holds", "holds", "holds", "not decided (runs not archived yet)",
                                        "not decided (runs not archived yet)"]
    assert "0.001: 0.01x" in rows[1][2] and "0.001: 5x" in rows[2][2]


def test_claims_rows_of_missing_runs_show_no_nan():
    rows = online_claims.claims_rows(online_claims.decide(_runs(BASE), ADAPT_UNTIL))
    assert not any("nan" in cell for row in rows for cell in row)


def test_momentum_pinned_counts_adaptations_at_either_bound():
    run = _run("stochastic", 1e-2, 0.01)
    run.adapt_steps = np.array([0, 10, 20, 30])
    run.momentum[[0, 20]] = 1 - 1e-4      # upper bound of mu
    run.momentum[30] = 0.0                # lower bound
    assert online_claims.momentum_pinned(run) == pytest.approx(3 / 4)
    run.momentum[[0, 20, 30]] = 0.9
    assert online_claims.momentum_pinned(run) == 0.0
    assert math.isnan(online_claims.momentum_pinned(_run("baseline", 0.1, 1.0)))


def test_comparison_table_lines_up_the_rates_of_two_archives():
    one = _runs(BASE, _run("stochastic", 1e-3, 0.01, final_loss=0.05), _run("stochastic", 1e-1, 0.02))
    two = _runs(BASE, _run("stochastic", 1e-1, 0.04, final_loss=0.02))
    header, rows = online_claims.comparison_table(("a", one, online_claims.decide(one, ADAPT_UNTIL)),
                                                  ("b", two, online_claims.decide(two, ADAPT_UNTIL)))
    assert len(header) == 7 and header[1].endswith(", a") and header[4].endswith(", b")
    assert rows[0][:3] == ["0.001", "0.01", "5"] and rows[0][4:] == ["-", "-", "-"]
    assert rows[1][4:6] == ["0.04", "2"]

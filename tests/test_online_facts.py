"""The online chapter's facts, one record per section (shortbias_lib.chapters.online_smd), on small
made-up runs whose numbers and verdicts are known by hand."""

import math

import numpy as np
import pytest

from shortbias_lib.experiments.online import experiment as online, claims as online_claims
from shortbias_lib.chapters import online_smd as online_facts
from shortbias_lib.experiments.online.record import OnlineRun

STEPS, ADAPT_UNTIL = 100, 50


def _run(mode, lr, eff, settled=None, final_loss=0.1, eval_losses=None, diverged_step=-1, seconds=60.0):
    """A run of STEPS steps with effective rate ``eff`` (a number or an array), evaluated every
    10 steps; ``settled`` is its effective rate when adaptation stopped (default: ``eff``'s last)."""
    eff = np.broadcast_to(np.asarray(eff, dtype=float), (STEPS,)).copy()
    evals = np.linspace(2.0, final_loss, 11) if eval_losses is None else np.asarray(eval_losses, float)
    return OnlineRun(label=f"{mode} {lr}", mode=mode, init_lr=lr, init_momentum=0.9, eff_lr=eff,
                     momentum=np.full(STEPS, 0.9), losses=np.ones(STEPS),
                     eval_steps=np.arange(evals.size) * 10, eval_losses=evals,
                     diverged=diverged_step >= 0, diverged_step=diverged_step,
                     settled_lr=eff[-1] if settled is None else settled, final_train_loss=final_loss,
                     test_error=0.02, seconds=seconds)


def _runs(*runs):
    return {f"{r.mode}{r.init_lr}": r for r in runs}


BASE = _run("baseline", 0.1, 1.0, final_loss=0.01)   # alpha_eff = 0.1 / (1 - 0.9) = 1


def test_sizes_facts_are_meta_steps_times_meta_lr():
    smoke = online.SIZES["smoke"]
    facts = online_facts.sizes_facts("smoke")
    assert facts["online_reach_mnist"] == pytest.approx(smoke["mnist"]["meta_steps"] * smoke["mnist"]["meta_lr"])
    assert facts["online_reach_cifar"] == pytest.approx(smoke["cifar10"]["meta_steps"] * smoke["cifar10"]["meta_lr"])
    assert facts["online_reach_paper"] == pytest.approx(1.0)   # 100 meta steps of 1e-2


def test_sizes_table_has_one_row_per_size_and_the_papers_rates_in_words():
    header, rows = online_facts.sizes_table("smoke")
    assert len(header) == 4 and all(len(row) == 4 for row in rows)
    by_name = {row[0]: row for row in rows}
    assert by_name["steps (adaptation during the first half)"][1:] == ("40", "20", "50,000")
    assert by_name["initial $\\alpha$, deterministic lookahead"][1:3] == ("none", "0.001")
    assert by_name["initial $\\alpha$, deterministic lookahead"][3] == "CIFAR-10: the same 4 values"


def test_run_facts_add_up_the_minutes_of_every_run():
    arrays = {"run_keys": np.array(["mnist__baseline__0.1", "cifar10__stochastic__0.001"])}
    arrays.update(_run("baseline", 0.1, 1.0, seconds=90.0).to_arrays("mnist__baseline__0.1__"))
    arrays.update(_run("stochastic", 1e-3, 0.1, seconds=30.0).to_arrays("cifar10__stochastic__0.001__"))
    meta = {"config": {"mnist": {"source": "idx"}, "cifar10": {"source": "jpeg"}}}
    assert online_facts.run_facts(arrays, meta) == {"mnist_source": "idx", "cifar_source": "jpeg",
                                                     "online_minutes": pytest.approx(2.0)}


def test_stochastic_facts_of_a_collapse_and_of_runs_that_end_above():
    """MNIST: rates that first double and then settle at a hundredth of the baseline's, ending
    worse; CIFAR-10: one run that only grows, settling at twice the baseline's and winning."""
    rise_then_fall = np.r_[np.full(10, 2.0), np.full(STEPS - 10, 0.01)]
    mnist = _runs(BASE, _run("stochastic", 1e-3, rise_then_fall / 100, settled=0.01, final_loss=0.04),
                  _run("stochastic", 1e-1, rise_then_fall, settled=0.02, final_loss=0.02))
    cifar = _runs(BASE, _run("stochastic", 5e-2, np.linspace(0.5, 2.0, STEPS), settled=2.0, final_loss=0.005))
    facts = online_facts.stochastic_facts(mnist, cifar)
    assert facts["mnist_sto_ratio"] == pytest.approx(0.015) and facts["mnist_sto_factor"] == pytest.approx(1 / 0.015)
    assert facts["mnist_sto_below"] == "2 of 2" and facts["mnist_sto_dir"] == "below"
    assert facts["mnist_sto_loss_ratio"] == pytest.approx(3) and facts["mnist_sto_worse"] == "2 of 2"
    # peak of the first quarter over the initial rate: 0.02 / 0.01 and 2 / 1
    assert facts["mnist_sto_rise"] == pytest.approx(2) and facts["mnist_sto_rise_word"] == "raised"
    assert facts["cifar_sto_dir"] == "above" and facts["cifar_sto_below"] == "0 of 1"
    assert facts["cifar_sto_worse"] == "0 of 1" and facts["cifar_base_eff"] == pytest.approx(1)
    assert facts["cifar_sto_rise"] == pytest.approx(np.linspace(0.5, 2.0, STEPS)[24] / 0.5)
    assert facts["cifar_sto_rise_word"] == "raised"
    falling = _runs(BASE, _run("stochastic", 0.1, np.geomspace(1.0, 0.01, STEPS)))
    assert online_facts.stochastic_facts(falling, cifar)["mnist_sto_rise_word"] == "did not raise"


def test_archive_facts_leave_claims_undecided_while_their_runs_are_missing():
    undecided = online_claims.verdict(None)
    partial = online_facts.archive_facts(_runs(BASE, _run("stochastic", 1e-3, 0.01, final_loss=0.05)),
                                         ["mnist__stochastic__0.1", "mnist__deterministic__0.001"], ADAPT_UNTIL)
    assert partial["arch_runs"] == "2 of 4"
    assert partial["arch_collapse"] == "holds" and partial["arch_worse"] == "holds"
    assert partial["arch_alike"] == partial["arch_large"] == partial["arch_unstable"] == undecided
    assert partial["arch_alike_factor"] == online_claims.ALIKE_SPREAD


def test_archive_facts_decide_every_claim_once_the_runs_are_present():
    complete = _runs(BASE, _run("stochastic", 1e-3, 0.01, final_loss=0.05),
                     _run("stochastic", 1e-1, 0.5, final_loss=0.005),
                     _run("deterministic", 1e-2, 5.0, diverged_step=70))
    facts = online_facts.archive_facts(complete, [], ADAPT_UNTIL)
    assert facts["arch_runs"] == "4 of 4"
    # settled rates 0.01 and 0.5 span 50 > 10; 0.5 is not 10x below 1; 0.005 beats the baseline
    assert facts["arch_alike"] == facts["arch_collapse"] == facts["arch_worse"] == "does not hold"
    assert facts["arch_large"] == facts["arch_unstable"] == "holds"
    assert facts["arch_det_bound"] == "0 of 1" and facts["arch_det_chance"] == "in none of them"


def test_deterministic_ends_count_runs_at_the_rate_bound_and_back_at_chance():
    chance = math.log(10)
    dead = [2.0, 1.0] + [chance] * 9      # evaluated to the last step: not stopped early
    runs = _runs(BASE, _run("deterministic", 1e-3, np.r_[np.full(50, 1.0), np.full(50, 10.0)], eval_losses=dead),
                 _run("deterministic", 1e-2, 9.0, eval_losses=[2.0, 1.0, 0.5] + [chance] * 8),
                 _run("deterministic", 1e-1, 3.0))
    facts = online_facts.deterministic_ends(runs)
    assert facts["arch_det_bound"] == "1 of 3" and facts["arch_rate_bound"] == 10.0
    assert facts["arch_det_chance"] == "from a step between 20 and 30 in 2 of 3"
    one = online_facts.deterministic_ends(_runs(BASE, _run("deterministic", 1e-3, 1.0, eval_losses=dead)))
    assert one["arch_det_chance"] == "from step 20 in 1 of 1"


def test_earlier_facts_name_the_verdicts_of_the_claims_it_has_runs_for():
    runs = _runs(BASE, _run("stochastic", 1e-3, 0.01, final_loss=0.05),
                 _run("stochastic", 1e-1, 0.012, final_loss=0.005))
    assert online_facts.earlier_facts(runs, ADAPT_UNTIL) == {
        "earlier_alike": "holds", "earlier_collapse": "holds", "earlier_worse": "does not hold"}


def test_loss_at_takes_the_nearest_evaluation_and_nothing_after_divergence():
    run = _run("deterministic", 1e-2, 1.0, eval_losses=[2.0, 1.0, 0.5, 0.4], diverged_step=25)
    assert online_facts.loss_at(run, 12) == 1.0 and online_facts.loss_at(run, 21) == 0.5
    assert math.isnan(online_facts.loss_at(run, 25))


def test_deterministic_facts_count_breakdowns_and_say_when_no_loss_is_defined():
    """CIFAR-10: one run diverges, one returns to chance level, one trains; MNIST: every run
    diverged before the half, so no median loss exists there."""
    chance = math.log(10)
    cifar = _runs(BASE, _run("stochastic", 1e-3, np.r_[3.0, np.full(STEPS - 1, 0.1)]),
                  _run("deterministic", 1e-3, np.r_[np.full(40, 8.0), np.full(STEPS - 40, np.nan)],
                       diverged_step=40),
                  _run("deterministic", 5e-3, 4.0, eval_losses=[2.0, 1.0, 0.5, 0.6, 0.7, 0.8, chance]),
                  _run("deterministic", 1e-2, 2.0, eval_losses=[2.0, 1.0, 0.5, 0.4, 0.3, 0.2, 0.1]))
    mnist = _runs(BASE, _run("deterministic", 1e-2, 8.0, diverged_step=30))
    facts = online_facts.deterministic_facts(mnist, cifar)
    assert facts["cifar_det_peak"] == pytest.approx(8) and facts["cifar_sto_peak"] == pytest.approx(3)
    assert facts["cifar_det_broken"] == "2 of 3"
    assert facts["cifar_det_half_loss"] == "0.5"   # median of 0.8 and 0.2, at step 50
    assert facts["cifar_base_half_loss"] == pytest.approx(BASE.eval_losses[5])
    assert facts["mnist_det_broken"] == "1 of 1" and facts["mnist_det_half_loss"].startswith("not defined")
    assert facts["chance_loss"] == pytest.approx(chance) and facts["chance_patience"] == 20
    none = online_facts.deterministic_facts(_runs(BASE), cifar)
    assert none["mnist_det_half_loss"] == "not measured" and none["mnist_det_broken"] == "0 of 0"
    assert math.isnan(none["mnist_det_peak"]) and math.isnan(none["mnist_base_half_loss"])


def test_archive_rows_list_missing_runs_and_each_archived_runs_provenance():
    runs = _runs(BASE)
    metas = {"baseline0.1": {"device": "cpu", "time_utc": "2026-12-01", "git_commit": "abc"}}
    rows = dict(online_facts.archive_rows(runs, metas, ["mnist__stochastic__0.1"]))
    assert rows["runs archived"] == "1 of 2" and rows["not archived yet"] == "`mnist__stochastic__0.1`"
    assert rows["`baseline0.1`"] == "cpu, 2026-12-01, commit `abc`, 1 min"
    assert dict(online_facts.archive_rows(runs, {}, []))["not archived yet"] == "none"


def test_facts_need_exactly_one_baseline():
    with pytest.raises(ValueError, match="exactly one baseline"):
        online_facts.baseline_of(_runs(_run("stochastic", 1e-3, 0.01)))
    two = {"a": BASE, "b": _run("baseline", 0.05, 0.5)}
    with pytest.raises(ValueError, match="got 2"):
        online_facts.stochastic_facts(two, two)

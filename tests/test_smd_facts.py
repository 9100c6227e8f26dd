"""The SMD chapter's facts: the hypergradient checks agree on a tiny network and fail loudly
when a reference disagrees, and each number and verdict follows from its measurements."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from shortbias_lib.chapters import smd as smd_facts
from shortbias_lib.profiles import PROFILES


def _images(n, shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return SimpleNamespace(images=torch.rand((n, *shape), generator=gen),
                           labels=torch.randint(0, 10, (n,), generator=gen))


def test_every_profile_has_sizes():
    assert set(PROFILES) <= set(smd_facts.SIZES)


def test_forward_mode_agrees_with_both_references_on_tiny_networks():
    sizes = dict(mlp_check=(784, 4, 10), cnn_check=dict(channels=(2, 2, 2), hidden=4), check_T=(2,), cnn_T=(1,),
                 check_batch=3)
    rows = smd_facts.check_cases(_images(12, (1, 28, 28), 0), _images(12, (3, 32, 32), 1), sizes, seed=0)
    assert len(rows) == 2 * 2 * 2  # two models x two lookaheads x two conventions
    assert {(r["model"], r["lookahead"], r["convention"]) for r in rows} == {
        (m, look, c) for m in ("MLP", "CNN") for look in ("stochastic", "deterministic")
        for c in ("paper", "heavy_ball")}
    facts = smd_facts.check_facts(rows)
    assert facts["smd_n_checks"] == 8 and facts["smd_worst_rev"] < 1e-10
    assert "heavy_ball" in smd_facts.check_table(rows)


def test_check_facts_raise_when_a_reference_disagrees():
    good = [{"rel_err_fd": 1e-7, "rel_err_reverse": 1e-13}]
    assert smd_facts.check_facts(good) == {"smd_n_checks": 1, "smd_worst_fd": 1e-7, "smd_worst_rev": 1e-13}
    with pytest.raises(smd_facts.HypergradientCheckFailed, match="reverse mode by 1.0e-06"):
        smd_facts.check_facts(good + [{"rel_err_fd": 1e-7, "rel_err_reverse": 1e-6}])
    with pytest.raises(smd_facts.HypergradientCheckFailed, match="finite differences by 1.0e-02"):
        smd_facts.check_facts(good + [{"rel_err_fd": 1e-2, "rel_err_reverse": 1e-13}])


def test_memory_facts_fit_reverse_mode_growth():
    horizons = np.array([10, 20, 40])
    facts = smd_facts.memory_facts(horizons, np.array([2.0, 2.5, 2.1]), 3 + 0.5 * horizons, (784, 32, 10))
    assert facts["smd_rev_slope"] == pytest.approx(0.5)
    assert facts["smd_rev_20k_gib"] == pytest.approx(0.5 * 20000 / 1024)
    assert (facts["smd_fwd_min"], facts["smd_fwd_max"], facts["smd_mem_sizes"]) == (2.0, 2.5, "784-32-10")
    assert "| 40 | 23.0 | 2.1 |" in smd_facts.memory_table(horizons, [2.0, 2.5, 2.1], 3 + 0.5 * horizons)


def test_long_lookahead_facts():
    facts = smd_facts.long_lookahead_facts({100: 1.0, 10000: 1.25}, 0.2, 10000)
    assert facts["smd_long_T"] == "10,000" and facts["smd_long_long"] == 1.25
    assert facts["smd_loss_log"] == pytest.approx(80000 / 2 ** 20)
    assert facts["smd_small_rev_long"] == pytest.approx(2000)


def test_cost_facts_are_ratios_to_a_plain_step():
    costs = {"plain": 0.002, "lr": 0.004, "lr+momentum": 0.0062, "lr, double backward": 0.01}
    facts = smd_facts.cost_facts(costs)
    assert facts == pytest.approx({"smd_ratio1": 2.0, "smd_ratio2": 3.1, "smd_ratio_increment": 1.1})
    assert "| hypergradient, 1 hyperparameter, double backward | 10.000 | 5.00 |" in smd_facts.cost_table(costs)


def test_run_facts_say_whether_the_effective_rate_rose_or_fell():
    run = lambda lr, mu: SimpleNamespace(lrs=np.array([0.01, lr]), momenta=np.array([0.9, mu]))  # noqa: E731
    facts = smd_facts.run_facts({"stochastic": run(0.02, 0.9), "deterministic": run(0.01, 0.95)}, 0.1, 7)
    assert facts["smd_n_meta"] == 7
    assert facts["smd_stochastic_eff"] == pytest.approx(0.2) and facts["smd_stochastic_direction"] == "rose"
    assert facts["smd_deterministic_eff"] == pytest.approx(0.2) and facts["smd_deterministic_direction"] == "rose"
    assert smd_facts.run_facts({"stochastic": run(0.005, 0.9)}, 0.1, 7)["smd_stochastic_direction"] == "fell"
    assert smd_facts.run_facts({"stochastic": run(0.005, 0.9)}, 0.1, 7)["smd_stochastic_mu"] == 0.9

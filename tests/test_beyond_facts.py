"""The facts functions of the "Beyond the paper" chapters (``beyond_facts``) on small
hand-made inputs: the numbers they quote against direct computations, and each verdict on a
case where it holds and on a counterexample where the chapter's claim must be refused."""

import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from shortbias_lib.chapters import beyond as beyond_facts  # noqa: E402
from shortbias_lib.nqm import horizon_bias, pes  # noqa: E402
from shortbias_lib.experiments.beyond import figures as plot_beyond  # noqa: E402
from shortbias_lib.chapters.beyond import ClaimError  # noqa: E402

CONFIG = dict(n=10, final_horizon=100, kappa=1000.0, n_alpha=4, mus=[0.0, 0.9], map_horizon=50, fit_steps=5,
              map_n=8, pes_n=5, pes_horizon=40, pes_window=10, pes_pairs=2, pes_episodes=4, pes_runs=10)


def horizon_arrays(**changes):
    """A horizon sweep over T = 1, 10, 100 in which the noisy step falls and the deterministic one rises."""
    arrays = dict(const_horizons=np.array([1.0, 10.0, 100.0]), const_final_horizon=np.array(100),
                  const_alpha=np.array([0.4, 0.2, 0.1]), const_mu=np.array([0.0, 0.5, 0.5]),
                  det_alpha=np.array([0.1, 0.1, 0.1]), det_mu=np.array([0.0, 0.5, 0.9]),
                  const_loss_at_final=np.array([4.0, 2.0, 1.0]), const_best_final=np.array(1.0),
                  decay_loss_at_final=np.array([9.0, 3.0, 0.5]), decay_best_final=np.array(0.5),
                  greedy_losses=np.array([10.0, 3.0, 2.0]), det_loss_at_final=np.array([1.0, 0.1, 1e-12]),
                  det_best_final=np.array(1e-12), seconds=np.array(1.5))
    arrays.update(changes)
    return arrays


def test_horizon_facts_quote_the_sweep():
    facts = beyond_facts.horizon_facts(horizon_arrays(), CONFIG)
    assert facts["by_eff_drop"] == pytest.approx(0.4 / 0.2)            # 0.4 / (0.1 / 0.5)
    assert facts["by_cost_10"] == pytest.approx(2.0) and facts["by_cost_100"] == pytest.approx(1.0)
    assert facts["by_greedy_vs_const"] == pytest.approx(2.0)
    assert facts["by_eff_det_1"] == pytest.approx(0.1) and facts["by_eff_det_T"] == pytest.approx(1.0)
    assert "rounding level, so" in facts["by_det_note"].data
    unsolved = beyond_facts.horizon_facts(horizon_arrays(det_best_final=np.array(0.01)), CONFIG)
    assert "not at rounding level" in unsolved["by_det_note"].data and "100 times" in unsolved["by_det_note"].data


def test_horizon_facts_missing_horizon_is_nan():
    arrays = horizon_arrays(const_horizons=np.array([1.0, 20.0, 100.0]))
    assert math.isnan(beyond_facts.horizon_facts(arrays, CONFIG)["by_cost_10"])


@pytest.mark.parametrize("changes", [
    dict(const_alpha=np.array([0.05, 0.2, 0.1])),                    # the short horizon chooses a smaller step
    dict(det_mu=np.array([0.9, 0.5, 0.0])),                          # the deterministic step falls
    dict(const_loss_at_final=np.array([1.0, 1.0, 1.0]), greedy_losses=np.array([1.0, 1.0, 0.5])),  # no cost
    dict(decay_loss_at_final=np.array([1.0, 0.6, 0.5])),             # decay cheaper than constant
])
def test_horizon_facts_refuse_unsupported_claims(changes):
    with pytest.raises(ClaimError):
        beyond_facts.horizon_facts(horizon_arrays(**changes), CONFIG)


def mnist_run(beta, final, label="MNIST, live `smoke` run"):
    return dict(label=label, horizons=np.array([10.0, 100.0]), alpha0=np.array([0.2, 0.1]), beta=np.array(beta),
                final=np.array(final), K=25.0, samples=8)


def decay_arrays(beta):
    return dict(decay_K=np.array(10.0), decay_horizons=np.array([1.0, 10.0, 100.0]), decay_beta=np.array(beta),
                decay_loss_at_final=np.array([5.0, 3.0, 1.0]), decay_best_final=np.array(1.0))


def test_decay_facts_use_only_horizons_past_K_and_describe_each_mnist_run():
    facts = beyond_facts.decay_facts(decay_arrays([0.01, 2.0, 0.5]), [mnist_run([4.0, 0.5], [0.3, 0.1])], "smoke")
    assert (facts["by_dec_T0"], facts["by_dec_b0"], facts["by_dec_c0"]) == (10, 2.0, 3.0)   # T = 1 < K left out
    assert facts["by_dec_trend"].startswith("falling")
    text = facts["by_dec_mnist"].data
    assert "8 sampled schedules" in text and "8 times that of the longest" in text and "3 times" in text
    assert "not shown" not in text
    rising = beyond_facts.decay_facts(decay_arrays([5.0, 0.5, 2.0]), [], "quick")
    assert rising["by_dec_trend"].startswith("not falling")
    assert "live MNIST run is not shown" in rising["by_dec_mnist"].data


def test_mnist_decay_runs_include_the_archived_paper_design():
    runs = beyond_facts.mnist_decay_runs("quick", results="/nonexistent")
    assert [run["label"] for run in runs] == ["MNIST, paper's design (archived)"]
    assert runs[0]["horizons"][-1] == 20000


def map_arrays(ratio_paper=20.0, ratio_sqrt=3.0, ratio_small=40.0, newton=1.0, det=1.0):
    """Maps over gamma (0, 0.5, 1), kappa (1, 1000), noise (0, 0.001, 1)."""
    ratio = np.ones((3, 2, 3))
    ratio[0, 1] = [det, ratio_small, ratio_paper]
    ratio[1, 1] = [1.0, 2.0, ratio_sqrt]
    ratio[2, 1] = [1.0, newton, newton]
    return dict(map_ratio=ratio, map_kappas=np.array([1.0, 1000.0]), map_noises=np.array([0.0, 0.001, 1.0]),
                map_gammas=np.array([0.0, 0.5, 1.0]), map_seconds=np.array(3.0))


def test_map_facts_read_the_cells_and_choose_the_noise_verdict():
    arrays = map_arrays()
    assert beyond_facts.map_ratio(arrays, 0.5, 1000, 1) == 3.0
    assert math.isnan(beyond_facts.map_ratio(arrays, 0.25, 1, 1))
    facts = beyond_facts.map_facts(arrays, CONFIG)
    quoted = (facts["by_kref"], facts["by_r_paper"], facts["by_r_paper_sqrt"], facts["by_r_max"])
    assert quoted == (1000.0, 20.0, 3.0, 40.0)
    bullet = facts["by_noise_bullet"].data
    assert "not a remedy" in bullet and "1 of the 1 ill-conditioned" in bullet
    assert facts["by_conclusion_noise"].data == "holds for noise only in the limit"
    # a map without small noise or an exact preconditioner says what it cannot judge
    small = map_arrays()
    small.update(map_ratio=small["map_ratio"][:2][:, :, [0, 2]], map_noises=np.array([0.0, 1.0]),
                 map_gammas=np.array([0.0, 0.5]))
    facts = beyond_facts.map_facts(small, CONFIG)
    assert "cannot say" in facts["by_noise_bullet"].data and "does not include it" in facts["by_newton_text"].data


@pytest.mark.parametrize("changes", [dict(det=1.01), dict(ratio_paper=1.5, ratio_sqrt=1.2, ratio_small=1.8),
                                     dict(ratio_sqrt=25.0), dict(ratio_small=10.0), dict(newton=1.1)])
def test_map_facts_refuse_unsupported_claims(changes):
    with pytest.raises(ClaimError):
        beyond_facts.map_facts(map_arrays(**changes), CONFIG)


def pes_arrays(**changes):
    arrays = dict(pes_opt=np.array(-2.0), pes_trunc_fixed=np.array(-3.0), pes_opt_F=np.array(0.1),
                  pes_trunc_fixed_F=np.array(0.2), pes_check_mean=np.array([1.0, 2.0]),
                  pes_check_exact=np.array([1.1, 2.0]), pes_check_se=np.array([0.1, 0.1]),
                  pes_traj_truncated=np.array([[-4.6], [-3.5], [-3.1]]),
                  pes_traj_pes=np.array([[-4.6], [-3.0], [-2.1], [-1.9]]), pes_opt_final_loss=np.array(1.0),
                  pes_trunc_fixed_final_loss=np.array(2.0), pes_final_best_theta=np.array(-1.5),
                  pes_final_best_loss=np.array(0.5), seconds=np.array(1.0))
    arrays.update(changes)
    return arrays


def test_pes_facts_quote_and_choose_where_pes_ends():
    facts = beyond_facts.pes_facts(pes_arrays(), CONFIG)
    assert facts["by_alpha_ratio"] == pytest.approx(math.e)
    assert facts["by_F_pct"] == pytest.approx(100 * (math.exp(0.1) - 1))
    assert facts["by_pes_zmax"] == pytest.approx(1.0) and facts["by_pes_end"] == pytest.approx(math.exp(-2.0))
    assert facts["by_pes_where"].data == "around the true optimum"
    far = beyond_facts.pes_facts(pes_arrays(pes_traj_pes=np.array([[-4.6], [-4.5], [-4.4], [-4.4]])), CONFIG)
    assert "still far" in far["by_pes_where"].data


@pytest.mark.parametrize("changes", [dict(pes_trunc_fixed=np.array(-1.0)), dict(pes_trunc_fixed_F=np.array(0.05)),
                                     dict(pes_check_mean=np.array([1.6, 2.0])),
                                     dict(pes_traj_truncated=np.array([[-4.6], [-2.0]]))])
def test_pes_facts_refuse_unsupported_claims(changes):
    with pytest.raises(ClaimError):
        beyond_facts.pes_facts(pes_arrays(**changes), CONFIG)


def mnist_pes_arrays(trunc0=-0.5, fd_last=-1.5):
    return dict(mnist_check_theta=np.log([[0.1, 0.5]]), mnist_check_exact=np.array([[-1.0, 0.2]]),
                mnist_check_trunc=np.array([[trunc0, 0.1]]), mnist_check_pes_mean=np.array([[-0.9, 0.25]]),
                mnist_check_pes_se=np.array([[0.1, 0.05]]), mnist_end_F_truncated=np.array(0.5),
                mnist_end_F_pes=np.array(0.4), mnist_end_truncated=np.log([0.1, 0.5]),
                mnist_end_pes=np.log([0.2, 0.5]), mnist_check_fd=np.array([[[-1.0, 0.0], [fd_last, 0.0]]]),
                mnist_fd_steps=np.array([0.1, 0.01]), mnist_start_F=np.array(0.6), mnist_seconds=np.array(2.0))


MNIST_CONFIG = dict(horizon=20, window=5, train_limit=None, eval_examples=100, pairs=2, sigma=0.1, check_runs=4,
                    episodes=2)


def test_pes_mnist_facts():
    facts = beyond_facts.pes_mnist_facts(mnist_pes_arrays(), MNIST_CONFIG)
    assert facts["by_m_train"] == 60000 and facts["by_m_particles"] == 4
    assert facts["by_m_zpes_max"] == pytest.approx(1.0) and facts["by_m_ztrunc_max"] == pytest.approx(5.0)
    assert facts["by_m_trunc_relerr"] == pytest.approx(50.0) and facts["by_m_better"] == "PES"
    assert facts["by_m_sign"].data.startswith("At 1 point the truncated estimate understates")
    assert facts["by_m_spread_max"] == pytest.approx(0.5) and "is rough" in facts["by_m_rough"].data
    assert "is the farthest" in facts["by_m_fd_note"].data
    other = beyond_facts.pes_mnist_facts(mnist_pes_arrays(trunc0=-1.5, fd_last=-1.1), MNIST_CONFIG)
    assert "does not have one sign" in other["by_m_sign"].data and "shows no roughness" in other["by_m_rough"].data
    assert "0.1" in beyond_facts.pes_mnist_check_table(mnist_pes_arrays())
    assert "$h$ = 0.01" in beyond_facts.pes_mnist_fd_table(mnist_pes_arrays(), 0.01)


def explore_like(greedy_steps, optimized_steps, greedy_losses, optimized_losses):
    return dict(greedy_alphas=np.array(greedy_steps), greedy_mus=np.zeros(len(greedy_steps)),
                optimized_alphas=np.array(optimized_steps), optimized_mus=np.zeros(len(optimized_steps)),
                greedy_losses=np.array(greedy_losses), optimized_losses=np.array(optimized_losses))


def test_exercise_verdicts():
    k = (100.0, 1000.0)
    facts = beyond_facts.exercise1_facts({100.0: 3.0, 1000.0: 4.0}, {100.0: 2.0, 1000.0: 2.0}, [0.9, 1.0], 1.0,
                                         map_arrays())
    assert facts["by_ex1_widen_min"] == 1.5 and "40 at" in facts["by_ex1_map"].data
    with pytest.raises(ClaimError):   # the gap does not widen at kappa = 100
        beyond_facts.exercise1_facts({100.0: 1.0, 1000.0: 4.0}, dict.fromkeys(k, 2.0), [1.0], 1.0, map_arrays())
    with pytest.raises(ClaimError):   # greedy not optimal at kappa = 1
        beyond_facts.exercise1_facts({100.0: 3.0, 1000.0: 4.0}, dict.fromkeys(k, 2.0), [1.1], 1.0, map_arrays())
    greedy, optimized = [1.0] + [0.01] * 59, [0.5] * 55 + [0.001] * 5
    losses_g, losses_o = np.linspace(2, 1, 61), np.concatenate([np.full(55, 3.0), np.linspace(3, 0.5, 6)])
    facts = beyond_facts.exercise2_facts(explore_like(greedy, optimized, losses_g, losses_o))
    assert facts["by_ex2_g0"] == 1.0 and facts["by_ex2_o_end"] == 0.001
    with pytest.raises(ClaimError):   # greedy does not collapse
        beyond_facts.exercise2_facts(explore_like([1.0] * 60, optimized, losses_g, losses_o))
    assert beyond_facts.exercise3_facts([2.0, 5.0, 3.0, 1.0])["by_ex3_ratios"] == "2, 5, 3, 1"
    for bad in ([5.0, 3.0, 2.0, 1.0], [2.0, 5.0, 6.0, 1.0, 3.0], [2.0, 5.0, 1.5]):
        with pytest.raises(ClaimError):
            beyond_facts.exercise3_facts(bad)
    beyond_facts.exercise4_facts([3.0, 2.0, 1.0])
    with pytest.raises(ClaimError):
        beyond_facts.exercise4_facts([3.0, 3.5, 1.0])
    beyond_facts.exercise5_facts([2.0, 1.5, 1.0])
    with pytest.raises(ClaimError):
        beyond_facts.exercise5_facts([2.0, 1.5, 1.1])
    beyond_facts.exercise6_facts([4.0, 2.0, 1.0], [1.0, 1.1, 1.2], [1.0, 10.0, 100.0], 1.0, 2.0)
    with pytest.raises(ClaimError):   # independent perturbations' spread does not grow
        beyond_facts.exercise6_facts([4.0, 2.0, 1.0], [1.0, 1.1, 1.2], [1.0, 1.0, 1.0], 1.0, 2.0)


def test_independent_perturbations_lose_the_antithetic_variance_reduction():
    """``antithetic=False`` is the same estimator, still unbiased in the mean, but its spread grows
    like 1/sigma where the antithetic one's stays bounded."""
    task = pes.MetaTask(horizon_bias.noisy_problem(6, 100.0, 1.0), horizon=20, window=10)
    theta = torch.tensor([math.log(0.1)], dtype=torch.float64)

    def spread(sigma, antithetic):
        est = pes.pes_estimates(task, theta, pairs=2, sigma=sigma, runs=300, antithetic=antithetic,
                                generator=torch.Generator().manual_seed(0)).sum(1)[:, 0]
        return float(est.std())
    assert spread(1e-3, False) > 30 * spread(1e-1, False)
    assert spread(1e-3, True) < 2 * spread(1e-1, True)


def test_decay_figure_legend_covers_no_data():
    runs = [mnist_run([4.0, 0.5], [0.3, 0.1], label="MNIST, paper's design (archived)"),
            mnist_run([3.0, 0.6], [0.3, 0.2])]
    fig = plot_beyond.plot_decay_choices(np.array([1.0, 10.0, 100.0]), 100, np.array([1.0, 0.5, 0.2]),
                                         np.array([2.0, 1.0, 0.5]), np.array([5.0, 2.0, 1.0]), runs)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert len(legend.get_texts()) == 3
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), ax

"""Checks of the beyond-the-paper modules (horizon_bias, pes, beyond_mnist) against independent computations.

PES against the exact (reverse-mode) gradient by Monte Carlo; the truncation
bias's sign; the greedy/optimized ratio against closed forms (spherical:
the best linear estimator; deterministic: the best Krylov polynomial by least
squares); the preconditioner's change of variables against a Monte Carlo
simulation of preconditioned SGD; the horizon sweep against brute force.
"""

import math

import numpy as np
import pytest
import torch

from shortbias_lib.experiments.beyond import mnist as beyond_mnist
from shortbias_lib.nqm import horizon_bias, pes
from shortbias_lib.nqm.dynamics import dynamics, greedy_schedule

F64 = torch.float64


@pytest.fixture(scope="module")
def task():
    return pes.MetaTask(horizon_bias.noisy_problem(12, 1000.0, 1.0, c0=5.0), horizon=40, window=10)


@pytest.mark.parametrize("theta, biased", [([-2.0], True), ([-0.5], False), ([-2.0, -1.0], True)])
def test_pes_is_unbiased(task, theta, biased):
    """Monte Carlo mean of the episode's PES estimates = exact gradient, within 4 standard errors."""
    theta = torch.tensor(theta, dtype=F64)
    exact = task.gradient(theta)
    runs = 600
    est = pes.pes_estimates(task, theta, pairs=4, sigma=1e-3, runs=runs,
                          generator=torch.Generator().manual_seed(1)).sum(1)
    mean, se = est.mean(0), est.std(0) / math.sqrt(runs)
    assert torch.all((mean - exact).abs() < 4 * se + 1e-6), (mean, se, exact)
    # the check has teeth: where truncation is strongly biased, its estimate is far outside
    if biased:
        trunc = pes.truncated_estimates(task, theta).sum(-2)
        assert torch.any((trunc - exact).abs() > 8 * se)


def test_exact_gradient_matches_finite_differences(task):
    theta = torch.tensor([-1.3, 0.2], dtype=F64)
    g = task.gradient(theta)
    eps = 1e-6
    for i in range(2):
        e = torch.zeros(2, dtype=F64)
        e[i] = eps
        fd = (task.objective(theta + e) - task.objective(theta - e)) / (2 * eps)
        assert abs(fd.item() - g[i].item()) < 1e-6 * (1 + abs(g[i].item()))


def test_truncation_without_truncation_is_exact():
    """One window covering the whole horizon: the truncated estimate is the exact gradient."""
    t = pes.MetaTask(horizon_bias.noisy_problem(8, 100.0, 1.0), horizon=30, window=30)
    theta = torch.tensor([-1.0], dtype=F64)
    assert torch.allclose(pes.truncated_estimates(t, theta).sum(-2), t.gradient(theta), rtol=1e-10)


def test_truncation_bias_has_predicted_sign(task):
    """Plain SGD, noisy and ill-conditioned: at the long-horizon optimum of log alpha the
    truncated gradient is positive, so truncation settles at a smaller learning rate."""
    opt = pes.fixed_point_1d(lambda x: float(task.gradient([x])[0]), -6.0, 0.5)
    assert abs(task.gradient([opt])[0]) < 1e-6
    trunc_at_opt = pes.truncated_estimates(task, torch.tensor([opt], dtype=F64)).sum(-2)[0]
    assert trunc_at_opt > 0
    fixed = pes.fixed_point_1d(lambda x: float(pes.truncated_estimates(task, [x]).sum(-2)[0]), -6.0, 0.5)
    assert fixed < opt
    assert task.objective(torch.tensor([fixed], dtype=F64)) > task.objective(torch.tensor([opt], dtype=F64))


def test_meta_optimize_settles_at_the_fixed_points(task):
    opt = pes.fixed_point_1d(lambda x: float(task.gradient([x])[0]), -6.0, 0.5)
    fixed = pes.fixed_point_1d(lambda x: float(pes.truncated_estimates(task, [x]).sum(-2)[0]), -6.0, 0.5)
    start = torch.tensor([math.log(0.05)], dtype=F64)
    tr = pes.meta_optimize(task, start, "truncated", episodes=40, lr=0.2)
    by_pes = pes.meta_optimize(task, start, "pes", episodes=40, lr=0.2, pairs=8, sigma=0.05, seed=3)
    assert abs(tr[-task.windows:].mean() - fixed) < 0.1
    assert abs(by_pes[-10 * task.windows:].mean() - opt) < 0.1
    with pytest.raises(ValueError, match="method"):
        pes.meta_optimize(task, start, "adam")


def test_meta_optimize_steps_along_the_estimators_window_estimates(task):
    """The online follower and the fixed-theta estimators share their windows: meta_optimize's
    first meta step is ``-lr`` times window 0's truncated (or PES, same seed) estimate, scaled
    back from the estimators' ``1/J``; and ``F`` is the mean of the windows' losses."""
    theta, lr, J = torch.tensor([-2.0, -1.0], dtype=F64), 0.1, task.windows
    first = pes.truncated_estimates(task, theta)[0] * J
    step = pes.meta_optimize(task, theta, "truncated", episodes=1, lr=lr)[1]
    torch.testing.assert_close(step, theta - lr * first, rtol=1e-14, atol=0)
    first = pes.pes_estimates(task, theta, pairs=3, sigma=0.05, generator=torch.Generator().manual_seed(4))[0, 0] * J
    step = pes.meta_optimize(task, theta, "pes", episodes=1, lr=lr, pairs=3, sigma=0.05, seed=4)[1]
    torch.testing.assert_close(step, theta - lr * first, rtol=1e-14, atol=0)
    losses = task.window_losses(theta)
    assert len(losses) == J and torch.allclose(task.objective(theta), torch.stack(losses).mean(), rtol=1e-14)


def test_ratio_is_one_where_greedy_is_optimal():
    out = horizon_bias.greedy_ratio_map([1, 1000], [0.0, 1.0], [0.0, 1.0], n=30, horizon=25, fit_steps=60)
    r = out["ratio"]
    np.testing.assert_allclose(r[:, :, 0], 1.0, atol=1e-6)     # deterministic
    np.testing.assert_allclose(r[:, 0, :], 1.0, atol=1e-6)     # kappa = 1 (spherical)
    np.testing.assert_allclose(r[1], 1.0, atol=1e-6)           # exact preconditioner
    assert r[0, 1, 1] > 1.2                                     # noisy, ill-conditioned
    assert np.all(r >= 1.0)


def test_spherical_greedy_is_the_best_linear_estimator():
    """kappa = 1: every momentum-SGD iterate is an affine average of the noisy targets; the best
    one has E[theta_T^2] = 1 / (1/A0 + T/sigma2), which greedy attains (and the fit cannot beat)."""
    n, T, c0, noise = 7, 20, 3.0, 0.5
    out = horizon_bias.greedy_ratio_map([1], [noise], n=n, horizon=T, c0=c0, fit_steps=30)
    closed = n * 0.5 / (1 / c0 ** 2 + T / noise)
    np.testing.assert_allclose(out["greedy"].item(), closed, rtol=1e-9)
    np.testing.assert_allclose(out["optimized"].item(), closed, rtol=1e-9)


def test_deterministic_greedy_is_the_best_krylov_polynomial():
    """noise 0: the loss after T steps of any momentum schedule is 1/2 sum h p(h)^2 c0^2 with
    deg p <= T, p(0) = 1; the least-squares minimum over such p is greedy's (CG's) loss."""
    n, kappa, T, c0 = 12, 10.0, 4, 2.0
    h, s2, m0, v0 = horizon_bias.noisy_problem(n, kappa, 0.0, c0)
    greedy = greedy_schedule(h, s2, m0, v0, T).losses[-1].item()
    hn = h.numpy()
    w = np.sqrt(0.5 * hn * c0 ** 2)
    basis = np.stack([hn ** k for k in range(1, T + 1)], 1) * w[:, None]
    coef, *_ = np.linalg.lstsq(basis, -w, rcond=None)
    best = float(np.sum((w + basis @ coef) ** 2))
    np.testing.assert_allclose(greedy, best, rtol=1e-6)


def test_preconditioner_change_of_variables_by_monte_carlo():
    """Simulate theta <- theta - alpha P^-1 (h (theta - c)), c ~ N(0, sigma2), and compare its
    mean excess loss with the exact dynamics of the transformed problem."""
    gen = torch.Generator().manual_seed(0)
    h = torch.tensor([1.0, 0.3, 0.05, 0.01], dtype=F64)
    s2, c0, gamma, alpha, mu, T = 1.0 / h, 2.0, 0.5, 0.4, 0.5, 12
    hp, s2p, a0p = horizon_bias.precondition(h, s2, torch.full_like(h, c0 ** 2), gamma)
    exact = dynamics(hp, s2p, torch.sqrt(a0p), torch.zeros_like(h),
                     torch.full((T,), alpha, dtype=F64), torch.full((T,), mu, dtype=F64))[-1]
    m = 200_000
    theta = torch.full((m, 4), c0, dtype=F64)
    v = torch.zeros_like(theta)
    p = h ** gamma
    for _ in range(T):
        c = torch.randn(m, 4, dtype=F64, generator=gen) * torch.sqrt(s2)
        v = mu * v - alpha * h * (theta - c) / p
        theta = theta + v
    losses = 0.5 * (h * theta ** 2).sum(1)
    assert abs(losses.mean() - exact) < 4 * losses.std() / math.sqrt(m)
    np.testing.assert_allclose(hp.max() / hp.min(), (h.max() / h.min()) ** (1 - gamma))


def test_horizon_bias_matches_brute_force():
    arrays = horizon_bias.noisy_problem(20, 500.0, 1.0)
    alphas, mus = [0.01, 0.05, 0.2, 0.8], [0.0, 0.9]
    out = horizon_bias.horizon_bias(arrays, [2, 10, 40], 60, alphas, mus)
    for k, T in enumerate([2, 10, 40]):
        cand = {(a, m): dynamics(*arrays, torch.full((T,), a, dtype=F64),
                                 torch.full((T,), m, dtype=F64))[-1].item()
             for a in alphas for m in mus}
        (a, m), best = min(cand.items(), key=lambda kv: kv[1])
        assert (out["alpha"][k], out["mu"][k]) == pytest.approx((a, m))
        assert out["loss_at_horizon"][k] == pytest.approx(best, rel=1e-12)
        at_final = dynamics(*arrays, torch.full((60,), a, dtype=F64), torch.full((60,), m, dtype=F64))[-1]
        assert out["loss_at_final"][k] == pytest.approx(at_final.item(), rel=1e-12)
    assert out["best_final"] <= out["loss_at_final"].min() + 1e-12
    with pytest.raises(ValueError, match="final_horizon"):
        horizon_bias.horizon_bias(arrays, [2, 100], 60, alphas, mus)


def test_decay_horizon_bias_and_schedule():
    a = horizon_bias.decay_schedule(0.5, 2.0, 5, K=2.0)
    np.testing.assert_allclose(a.numpy(), 0.5 / (1 + np.arange(5) / 2.0) ** 2)
    arrays = horizon_bias.noisy_problem(10, 100.0, 1.0)
    out = horizon_bias.decay_horizon_bias(arrays, [5, 40], 40, [0.05, 0.5], [0.01, 3.0], mu=0.5)
    T = 5
    best = min(dynamics(*arrays, horizon_bias.decay_schedule(a0, be, 40, 10.0)[:T],
                        torch.full((T,), 0.5, dtype=F64))[-1].item()
            for a0 in [0.05, 0.5] for be in [0.01, 3.0])
    assert out["loss_at_horizon"][0] == pytest.approx(best, rel=1e-12)


def test_explore_outputs_are_consistent():
    r = horizon_bias.explore(kappa=300.0, noise=0.5, horizon=40, lr=0.1, mu=0.8, n=15, grid=6)
    arrays = horizon_bias.noisy_problem(15, 300.0, 0.5)
    g = greedy_schedule(*arrays, 40)
    np.testing.assert_allclose(r["greedy_losses"], g.losses.numpy(), rtol=1e-12)
    fixed = dynamics(*arrays, torch.full((40,), 0.1, dtype=F64), torch.full((40,), 0.8, dtype=F64))
    np.testing.assert_allclose(r["fixed_losses"], fixed.numpy(), rtol=1e-12)
    opt = dynamics(*arrays, torch.as_tensor(r["optimized_alphas"]), torch.full((40,), 0.8, dtype=F64))
    np.testing.assert_allclose(r["optimized_losses"], opt.numpy(), rtol=1e-12)
    expected = horizon_bias.decay_schedule(r["optimized_alpha0"], r["optimized_beta"], 40, 10.0)
    np.testing.assert_allclose(r["optimized_alphas"], expected.numpy())
    # the chosen schedule beats every other member of its grid, e.g. the constant ones
    for a0 in np.logspace(-2.5, 0.5, 6):
        other = dynamics(*arrays, torch.full((40,), a0, dtype=F64), torch.full((40,), 0.8, dtype=F64))[-1]
        assert r["optimized_losses"][-1] <= other.item() + 1e-12 or not np.isfinite(other.item())
    assert r["steps"].shape == (41,) and r["greedy_alphas"].shape == (40,)


def test_explore_marks_divergence_as_inf():
    r = horizon_bias.explore(kappa=10.0, noise=1.0, horizon=200, lr=5.0, mu=0.9, n=5, grid=4)
    assert np.isinf(r["fixed_losses"][-1])


@pytest.mark.parametrize("kw, name", [
    (dict(horizon=0), "horizon"), (dict(lr=-1.0), "lr"), (dict(mu=1.0), "mu"),
    (dict(kappa=0.5), "kappa"), (dict(noise=-1.0), "noise")])
def test_explore_rejects_bad_input(kw, name):
    with pytest.raises(ValueError, match=name):
        horizon_bias.explore(**dict(dict(n=5, horizon=10, grid=3), **kw))


def test_bad_arguments():
    with pytest.raises(ValueError, match="gamma"):
        horizon_bias.precondition(torch.ones(3), torch.ones(3), torch.ones(3), 1.5)
    with pytest.raises(ValueError, match="window"):
        pes.MetaTask(horizon_bias.noisy_problem(5, 10.0), horizon=25, window=10)
    with pytest.raises(ValueError, match="sigma"):
        pes.pes_estimates(pes.MetaTask(horizon_bias.noisy_problem(5, 10.0), 20, 10), torch.zeros(1), sigma=0.0)


def test_plot_and_widget():
    import matplotlib

    matplotlib.use("Agg")
    from shortbias_lib.plots import explorer

    r = horizon_bias.explore(n=5, horizon=20, grid=3)
    fig = explorer.plot_explore(r, "t")
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3
    box = explorer.make_explorer(dict(horizon=20), n=5, grid=3)
    assert box.children


# ---------------------------------------------------------------- the MNIST task (synthetic data)

@pytest.fixture(scope="module")
def mnist_task():
    """The MNIST meta-task's machinery on random images (no data needed), float64, 4 steps."""
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(300, 1, 28, 28, generator=gen)
    labels = torch.randint(0, 10, (300,), generator=gen)
    return beyond_mnist.MNISTMetaTask((images, labels), (images[:100], labels[:100]), horizon=4, window=2,
                           batch_size=50, warm_steps=5, dtype=F64, sizes=(784, 12, 10))


def test_mnist_task_matches_a_plain_training_loop(mnist_task):
    """F from the batched, flattened implementation = a loop with models.mlp_apply."""
    from shortbias_lib.engine.models import loss_fn, mlp_apply

    theta = torch.tensor([math.log(0.05), math.log(0.7)], dtype=F64)
    alphas = pes.schedule_from_theta(theta, 0, 4, mnist_task.K)
    w, v = list(mnist_task.w0), list(mnist_task.v0)
    logs = []
    for t in range(4):
        x, y = mnist_task.batches[t]
        w = [p.detach().requires_grad_(True) for p in w]
        g = torch.autograd.grad(loss_fn(mlp_apply, w, x, y), w)
        v = [0.9 * vi - alphas[t] * gi for vi, gi in zip(v, g)]
        w = [wi + vi for wi, vi in zip(w, v)]
        if t % 2 == 1:
            logs.append(math.log(loss_fn(mlp_apply, w, mnist_task.eval_images, mnist_task.eval_labels).item()))
    with torch.no_grad():
        assert mnist_task.objective(theta).item() == pytest.approx(np.mean(logs), rel=1e-10)
        # a batch of particles gives each particle's own value
        both = mnist_task.objective(torch.stack([theta, theta + 0.3]))
    assert both[0].item() == pytest.approx(np.mean(logs), rel=1e-10)
    assert both[1].item() == pytest.approx(mnist_task.objective(theta + 0.3).item(), rel=1e-10)


def test_mnist_gradient_matches_finite_differences_and_one_window(mnist_task):
    theta = torch.tensor([math.log(0.05), math.log(0.7)], dtype=F64)
    g = mnist_task.gradient(theta)
    for i in range(2):
        e = torch.zeros(2, dtype=F64)
        e[i] = 1e-5
        with torch.no_grad():
            fd = (mnist_task.objective(theta + e) - mnist_task.objective(theta - e)) / 2e-5
        assert fd.item() == pytest.approx(g[i].item(), rel=1e-4, abs=1e-8)
    one = beyond_mnist.MNISTMetaTask.__new__(beyond_mnist.MNISTMetaTask)
    one.__dict__.update(mnist_task.__dict__, window=4, windows=1)
    assert torch.allclose(pes.truncated_estimates(one, theta).sum(-2), one.gradient(theta), rtol=1e-8)


def test_mnist_pes_is_unbiased(mnist_task):
    theta = torch.tensor([math.log(0.2), math.log(0.7)], dtype=F64)
    exact = mnist_task.gradient(theta)
    runs = 300
    est = pes.pes_estimates(mnist_task, theta, pairs=2, sigma=1e-3, runs=runs,
                          generator=torch.Generator().manual_seed(2)).sum(1)
    mean, se = est.mean(0), est.std(0) / math.sqrt(runs)
    assert torch.all((mean - exact).abs() < 4 * se), (mean, se, exact)
    trunc = pes.truncated_estimates(mnist_task, theta).sum(-2)
    assert (trunc[0] - exact[0]).abs() > 4 * se[0]  # truncation is visibly biased here

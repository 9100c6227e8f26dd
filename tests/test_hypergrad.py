"""Forward-mode hypergradients against finite differences and reverse mode; SMD (Algorithm 1)."""

import math

import numpy as np
import pytest
import torch

from shortbias_lib.hypergrad import (BOUNDS, Hyperparameters, autograd_grad_hvp, finite_difference,
                                     hypergradient, make_meta_optimizer, meta_loss, mlp_grad_hvp,
                                     reverse_hypergradient, smd)
from shortbias_lib.models import cnn_apply, cnn_init, loss_fn, mlp_apply, mlp_init
from shortbias_lib.training import BatchSampler, init_state

F64 = torch.float64


def mlp_problem(seed=0, n=48, d=10, classes=4):
    g = torch.Generator().manual_seed(seed)
    params = mlp_init(g, sizes=(d, 7, 6, classes), init_std=0.4, dtype=F64)
    images = torch.randn(n, d, generator=g, dtype=F64)
    labels = torch.randint(0, classes, (n,), generator=g)
    velocity = tuple(0.02 * torch.randn(p.shape, generator=g, dtype=F64) for p in params)
    return init_state(params, velocity, step=20), images, labels


def cnn_problem(seed=0, n=12):
    g = torch.Generator().manual_seed(seed)
    params = cnn_init(g, channels=(2, 3, 3), hidden=5, image_size=8, init_std=0.3, dtype=F64)
    images = torch.rand(n, 3, 8, 8, generator=g, dtype=F64)
    labels = torch.randint(0, 10, (n,), generator=g)
    return init_state(params, step=3), images, labels


def batches_of(images, labels, size, count, deterministic=False):
    if deterministic:
        return [(images[:size], labels[:size])] * count
    n = len(labels)
    return [(images[(i * size) % n:(i * size) % n + size], labels[(i * size) % n:(i * size) % n + size])
            for i in range(count)]


HYPERS = [
    Hyperparameters(0.2, 0.8, beta=0.7, K=10, learn=("lr", "momentum", "beta")),
    Hyperparameters(0.2, 0.8, beta=0.7, K=10, learn=("lr", "momentum", "beta"), space="raw"),
    Hyperparameters(0.3, 0.0, learn=("lr",), space="raw"),  # plain SGD: Equations 8 and 9
]


@pytest.mark.parametrize("T", [1, 3, 7])
@pytest.mark.parametrize("convention", ["paper", "heavy_ball"])
@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("hyper", HYPERS, ids=["log", "raw", "sgd"])
def test_mlp_hypergradient_matches_finite_differences(T, convention, deterministic, hyper):
    state, images, labels = mlp_problem()
    look = batches_of(images, labels, 8, T, deterministic)
    evaluation = look[:1] if deterministic else batches_of(images[40:], labels[40:], 8, 1)
    result = hypergradient(mlp_apply, state, hyper, look, evaluation, convention)
    fd = finite_difference(mlp_apply, state, hyper, look, evaluation, convention, eps=1e-6)
    np.testing.assert_allclose(result.grad, fd, rtol=1e-5, atol=1e-9)
    assert result.loss == pytest.approx(meta_loss(mlp_apply, state, hyper, look, evaluation, convention))


@pytest.mark.parametrize("convention", ["paper", "heavy_ball"])
def test_hypergradient_matches_reverse_mode(convention):
    state, images, labels = mlp_problem(seed=1)
    hyper = HYPERS[0]
    look = batches_of(images, labels, 8, 10)
    evaluation = batches_of(images, labels, 8, 2)
    forward = hypergradient(mlp_apply, state, hyper, look, evaluation, convention).grad
    reverse = reverse_hypergradient(mlp_apply, state, hyper, look, evaluation, convention)
    np.testing.assert_allclose(forward, reverse, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("convention", ["paper", "heavy_ball"])
@pytest.mark.parametrize("T", [1, 4])
def test_cnn_hypergradient_matches_finite_differences_and_reverse(convention, T):
    state, images, labels = cnn_problem()
    hyper = Hyperparameters(0.05, 0.9, beta=1.0, K=5, learn=("lr", "momentum", "beta"))
    look = batches_of(images, labels, 4, T)
    evaluation = batches_of(images[8:], labels[8:], 4, 1)
    result = hypergradient(cnn_apply, state, hyper, look, evaluation, convention)
    fd = finite_difference(cnn_apply, state, hyper, look, evaluation, convention, eps=1e-6)
    np.testing.assert_allclose(result.grad, fd, rtol=1e-5, atol=1e-9)
    reverse = reverse_hypergradient(cnn_apply, state, hyper, look, evaluation, convention)
    np.testing.assert_allclose(result.grad, reverse, rtol=1e-9, atol=1e-13)


def test_mlp_fast_path_matches_double_backward():
    state, images, labels = mlp_problem()
    g = torch.Generator().manual_seed(5)
    directions = tuple(torch.randn((3,) + p.shape, generator=g, dtype=F64) for p in state.params)
    loss, grads, hvps = mlp_grad_hvp(state.params, images, labels, directions)
    ref_loss, ref_grads, ref_hvps = autograd_grad_hvp(mlp_apply)(state.params, images, labels, directions)
    torch.testing.assert_close(loss, ref_loss)
    for a, b in zip(grads + tuple(hvps), ref_grads + tuple(ref_hvps)):
        torch.testing.assert_close(a, b)


def test_hypergradient_state_matches_plain_training_and_is_unchanged():
    from shortbias_lib.training import train

    state, images, labels = mlp_problem()
    before = [p.clone() for p in state.params]
    hyper = Hyperparameters(0.1, 0.9, beta=0.5, K=10, learn=("lr", "beta"))
    look = batches_of(images, labels, 8, 5)
    out = hypergradient(mlp_apply, state, hyper, look, look[:1])
    assert all(torch.equal(a, b) for a, b in zip(before, state.params))
    from shortbias_lib.training import InverseTime
    ref = train(mlp_apply, state, look, 5, InverseTime(0.1, 0.5, K=10), 0.9)
    for a, b in zip(out.state.params, ref.state.params):
        torch.testing.assert_close(a, b)
    np.testing.assert_allclose(out.losses, ref.losses)
    assert out.state.step == state.step + 5


def test_hyperparameters_coordinates_and_validation():
    h = Hyperparameters(0.01, 0.9, beta=2.0, learn=("lr", "momentum", "beta"))
    np.testing.assert_allclose(h.vector(), [math.log(0.1), math.log(0.1), math.log(2.0)])
    back = h.from_vector(h.vector())
    assert back.lr == pytest.approx(0.01) and back.momentum == pytest.approx(0.9) and back.beta == pytest.approx(2.0)
    assert h.names == ("log_eff_lr", "log_one_minus_mu", "log_beta")
    low, high = h.bounds()
    np.testing.assert_allclose(np.exp(low), [BOUNDS[n][0] for n in h.learn])
    np.testing.assert_allclose(np.exp(high), [BOUNDS[n][1] for n in h.learn])
    for kwargs, word in [({"lr": 0.0}, "lr"), ({"lr": -1.0}, "lr"), ({"lr": 0.1, "momentum": 1.0}, "momentum"),
                         ({"lr": 0.1, "momentum": -0.5}, "momentum"), ({"lr": 0.1, "beta": -1.0}, "beta"),
                         ({"lr": 0.1, "learn": ("alpha",)}, "learn"), ({"lr": 0.1, "space": "exp"}, "space")]:
        with pytest.raises(ValueError, match=word):
            Hyperparameters(**kwargs)


def test_horizon_must_be_positive():
    state, images, labels = mlp_problem()
    sampler = BatchSampler(images, labels, 8)
    with pytest.raises(ValueError, match="horizon"):
        smd(mlp_apply, state, HYPERS[0], 0, 3, sampler)
    with pytest.raises(ValueError, match="horizon"):
        hypergradient(mlp_apply, state, HYPERS[0], [], [(images, labels)])
    with pytest.raises(ValueError, match="meta_optimizer"):
        make_meta_optimizer("rmsprop")


def convex_problem(seed=0):
    """Softmax regression on random labels: convex, with a finite best learning rate for 5 steps."""
    g = torch.Generator().manual_seed(seed)
    params = mlp_init(g, sizes=(5, 3), init_std=0.1, dtype=F64)
    images = 3 * torch.randn(64, 5, generator=g, dtype=F64)
    labels = torch.randint(0, 3, (64,), generator=g)
    return init_state(params), images, labels


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_smd_moves_learning_rate_against_hypergradient_sign(optimizer):
    state, images, labels = convex_problem()
    sampler = BatchSampler(images, labels, 64, seed=1)  # full batch: a deterministic problem
    hyper = Hyperparameters(1e-3, 0.5, learn=("lr",))
    result = smd(mlp_apply, state, hyper, horizon=5, meta_steps=10, sampler=sampler,
                 deterministic=True, meta_optimizer=optimizer, meta_lr=0.05)
    steps = np.diff(result.trajectory[:, 0])
    # Learning rate far too small: the hypergradient is negative and SMD raises the rate.
    assert np.all(result.hypergrads[:, 0] < 0)
    assert np.all(steps > 0) and result.lrs[-1] > result.lrs[0]
    # The first step of each optimizer has a known size along -sign(hypergradient).
    first = 0.05 * (1.0 if optimizer == "adam" else -np.clip(result.hypergrads[0, 0], -10, 10))
    assert steps[0] == pytest.approx(first, rel=1e-3)
    # A learning rate far too large is lowered.
    big = smd(mlp_apply, state, Hyperparameters(1.0, 0.5, learn=("lr",)), 5, 5, sampler,
              deterministic=True, meta_optimizer=optimizer, meta_lr=0.05)
    assert np.all(big.hypergrads[:, 0] > 0) and np.all(np.diff(big.trajectory[:, 0]) < 0)


def test_smd_clips_and_projects():
    state, images, labels = convex_problem()
    sampler = BatchSampler(images, labels, 16, seed=1)
    hyper = Hyperparameters(1e-6, 0.5, learn=("lr", "momentum"))  # effective lr below 1e-4: projected
    result = smd(mlp_apply, state, hyper, 3, 4, sampler, meta_optimizer="momentum", meta_lr=1.0, clip=1e-3)
    low, high = hyper.bounds()
    assert np.all(result.trajectory >= low - 1e-12) and np.all(result.trajectory <= high + 1e-12)
    assert result.trajectory[0, 0] == pytest.approx(math.log(1e-4))
    step = result.trajectory[1] - result.trajectory[0]
    assert np.all(np.abs(step) <= 1e-3 + 1e-12)
    assert result.meta_losses.shape == (4,) and result.hypergrads.shape == (4, 2)


def test_smd_stochastic_lookahead_uses_fresh_batches():
    state, images, labels = convex_problem()
    calls = []

    def batch_fn(m):
        look = batches_of(images, labels, 8, 3)
        calls.append(m)
        return look, [(images[m:m + 8], labels[m:m + 8])]

    result = smd(mlp_apply, state, Hyperparameters(0.1, 0.9), 3, 5, batch_fn=batch_fn)
    assert calls == list(range(5)) and len(result.meta_losses) == 5


def test_smd_reports_divergence():
    state, images, labels = mlp_problem()
    state = init_state(tuple(p.float() for p in state.params))
    sampler = BatchSampler(images.float(), labels, 16, seed=1)
    hyper = Hyperparameters(1e20, 0.99, learn=("lr",), space="raw")
    result = smd(mlp_apply, state, hyper, 20, 3, sampler, project=False)
    assert result.diverged and result.diverged_meta_step == 0 and 0 < result.diverged_step < 20
    assert len(result.meta_losses) == 0


def test_generators_of_batches_give_the_same_hypergradient():
    state, images, labels = mlp_problem()
    hyper = HYPERS[0]
    look = batches_of(images, labels, 8, 6)
    evaluation = batches_of(images, labels, 8, 2)
    as_lists = hypergradient(mlp_apply, state, hyper, look, evaluation)
    lazy = hypergradient(mlp_apply, state, hyper, (b for b in look), iter(evaluation))
    np.testing.assert_array_equal(as_lists.grad, lazy.grad)
    np.testing.assert_array_equal(as_lists.losses, lazy.losses)
    with pytest.raises(ValueError, match="horizon"):
        hypergradient(mlp_apply, state, hyper, iter([]), evaluation)

"""Forward-mode hypergradients against finite differences and reverse mode; SMD (Algorithm 1)."""

import math

import numpy as np
import pytest
import torch

from shortbias_lib.engine.hvp import autograd_grad_hvp, mlp_grad_hvp
from shortbias_lib.engine.hypergrad import hypergradient, lookahead_batches, smd
from shortbias_lib.engine.hyperparams import BOUNDS, Hyperparameters
from shortbias_lib.engine.meta_optim import META_OPTIMIZERS, adam_update, make_meta_optimizer
from shortbias_lib.engine.reference import finite_difference, meta_loss, reverse_hypergradient
from shortbias_lib.engine.models import cnn_apply, cnn_init, mlp_apply, mlp_init
from shortbias_lib.engine.batches import BatchSampler
from shortbias_lib.engine.training import init_state

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


def per_direction_grad_hvp(params, images, labels, directions):
    """Reference: Pearlmutter's R-operator for the MLP written out one direction at a time."""
    x = images.reshape(images.shape[0], -1)
    N, L = x.shape[0], len(params) // 2
    W, b = params[0::2], params[1::2]
    hs, masks, z = [x], [], torch.addmm(b[0], x, W[0].t())
    for layer in range(1, L):
        masks.append(z > 0)
        hs.append(z * masks[-1])
        z = torch.addmm(b[layer], hs[-1], W[layer].t())
    logp = torch.log_softmax(z, -1)
    prob = logp.exp()
    delta = prob.clone()
    delta[torch.arange(N), labels] -= 1
    delta /= N
    deltas = [None] * L
    for layer in range(L - 1, -1, -1):
        deltas[layer] = delta
        if layer > 0:
            delta = (delta @ W[layer]) * masks[layer - 1]
    hvps = [torch.empty_like(d) for d in directions]
    for j in range(directions[0].shape[0]):
        V = [d[j] for d in directions[0::2]]
        c = [d[j] for d in directions[1::2]]
        Rz, Rhs = torch.addmm(c[0], x, V[0].t()), [None]
        for layer in range(1, L):
            Rhs.append(Rz * masks[layer - 1])
            Rz = torch.addmm(c[layer], Rhs[-1], W[layer].t()) + hs[layer] @ V[layer].t()
        Rd = prob * (Rz - (prob * Rz).sum(-1, keepdim=True)) / N
        for layer in range(L - 1, -1, -1):
            hvps[2 * layer][j] = Rd.t() @ hs[layer] + (deltas[layer].t() @ Rhs[layer] if layer else 0)
            hvps[2 * layer + 1][j] = Rd.sum(0)
            if layer > 0:
                Rd = (Rd @ W[layer] + deltas[layer] @ V[layer]) * masks[layer - 1]
    return hvps


@pytest.mark.parametrize("P", [1, 2, 3])
def test_mlp_batched_directions_equal_one_direction_at_a_time(P):
    """All P directions in one pass give, to roundoff (float64), the per-direction computation."""
    state, images, labels = mlp_problem(seed=P)
    g = torch.Generator().manual_seed(10 + P)
    directions = tuple(torch.randn((P,) + p.shape, generator=g, dtype=F64) for p in state.params)
    loss, grads, hvps = mlp_grad_hvp(state.params, images, labels, directions)
    reference = per_direction_grad_hvp(state.params, images, labels, directions)
    for a, b in zip(hvps, reference):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for j in range(P):  # and each direction alone through the batched code
        _, grads_j, hvps_j = mlp_grad_hvp(state.params, images, labels, tuple(d[j:j + 1] for d in directions))
        for a, b in zip(hvps, hvps_j):
            torch.testing.assert_close(a[j:j + 1], b, rtol=1e-12, atol=1e-14)
        for a, b in zip(grads, grads_j):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fn", [mlp_grad_hvp, autograd_grad_hvp(mlp_apply)], ids=["mlp", "double backward"])
@pytest.mark.parametrize("strided", [False, True])
def test_grad_hvp_writes_and_accumulates_into_out(fn, strided):
    """``out`` receives the results (contiguous blocks or rows of one flat buffer); with
    ``accumulate=(beta, alpha)`` the products are added as ``beta out + alpha H d``."""
    state, images, labels = mlp_problem()
    P = 2
    g = torch.Generator().manual_seed(3)
    sizes = [p.numel() for p in state.params]
    if strided:  # direction-major rows (P, n): strided blocks
        flat = torch.randn(P, sum(sizes), generator=g, dtype=F64)
        directions = tuple(t.view((P,) + p.shape) for t, p in zip(flat.split(sizes, -1), state.params))
    else:
        directions = tuple(torch.randn((P,) + p.shape, generator=g, dtype=F64) for p in state.params)
    loss, grads, hvps = mlp_grad_hvp(state.params, images, labels, directions)
    start = tuple(torch.randn((P,) + p.shape, generator=g, dtype=F64) for p in state.params)
    targets = ([torch.empty_like(p) for p in state.params], [s.clone() for s in start])
    fn(state.params, images, labels, directions, out=targets, accumulate=(0.7, -0.3))
    for a, b in zip(targets[0], grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for a, s, h in zip(targets[1], start, hvps):
        torch.testing.assert_close(a, 0.7 * s - 0.3 * h, rtol=1e-12, atol=1e-14)
    fn(state.params, images, labels, directions, out=targets, accumulate=(0.0, 2.0))
    for a, h in zip(targets[1], hvps):
        torch.testing.assert_close(a, 2.0 * h, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("check_every", [1, 3, 50])
@pytest.mark.parametrize("lazy", [False, True])
def test_divergence_reports_the_first_bad_step_whatever_the_check_interval(monkeypatch, check_every, lazy):
    """Losses are checked block by block on the host; the error names the first non-finite
    step (the one plain training reports) and no NaN comes back."""
    from shortbias_lib.engine import hypergrad
    from shortbias_lib.errors import DivergenceError
    from shortbias_lib.engine.training import train

    from shortbias_lib.engine import training

    monkeypatch.setattr(hypergrad, "CHECK_EVERY", check_every)
    # Only NaN and infinity count here, so that the first bad step lies several steps in.
    monkeypatch.setattr(training, "LOSS_LIMIT", math.inf)
    state, images, labels = mlp_problem()
    state = init_state(tuple(p.float() for p in state.params), step=7)
    look = batches_of(images.float(), labels, 8, 12)
    hyper = Hyperparameters(1e11, 0.99, learn=("lr", "momentum"), space="raw")
    in_order = lambda t: look[t - 7]  # noqa: E731 (train reads a list at the global step)
    ref = train(mlp_apply, state.clone(), in_order, 12, 1e11, 0.99)  # (train updates the state it gets)
    assert ref.diverged and 7 + 3 < ref.diverged_step < 7 + 12
    with pytest.raises(DivergenceError) as info:
        hypergradient(mlp_apply, state, hyper, (b for b in look) if lazy else look, look[:1])
    assert info.value.step == ref.diverged_step
    ok = hypergradient(mlp_apply, state, Hyperparameters(0.01, 0.9), (b for b in look) if lazy else look,
                       look[:1])
    assert ok.losses.shape == (12,) and np.all(np.isfinite(ok.losses)) and np.isfinite(ok.loss)
    np.testing.assert_allclose(ok.losses, train(mlp_apply, state.clone(), in_order, 12, 0.01, 0.9).losses,
                               rtol=1e-5)


def test_hypergradient_state_matches_plain_training_and_is_unchanged():
    from shortbias_lib.engine.training import train

    state, images, labels = mlp_problem()
    before = [p.clone() for p in state.params]
    hyper = Hyperparameters(0.1, 0.9, beta=0.5, K=10, learn=("lr", "beta"))
    look = batches_of(images, labels, 8, 5)
    out = hypergradient(mlp_apply, state, hyper, look, look[:1])
    assert all(torch.equal(a, b) for a, b in zip(before, state.params))
    from shortbias_lib.engine.schedules import InverseTime
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
        smd(mlp_apply, state, HYPERS[0], 0, 3, lookahead_batches(sampler, 1))
    with pytest.raises(ValueError, match="horizon"):
        lookahead_batches(sampler, 0)
    with pytest.raises(ValueError, match="horizon"):
        hypergradient(mlp_apply, state, HYPERS[0], [], [(images, labels)])
    with pytest.raises(ValueError, match="meta_optimizer"):
        make_meta_optimizer("rmsprop")


def test_adam_with_one_rate_per_row_equals_one_adam_per_row():
    """The noisy-quadratic fits step a batch of schedules, each with its own Adam rate."""
    rng = np.random.default_rng(0)
    rates = np.array([[0.1], [0.003]])
    u, grads = rng.normal(size=(2, 5)), rng.normal(size=(4, 2, 5))
    batched, rows = make_meta_optimizer("adam", rates), [make_meta_optimizer("adam", r) for r in rates[:, 0]]
    together, apart = u.copy(), [row.copy() for row in u]
    for g in grads:
        together = batched.step(together, g)
        apart = [opt.step(x, gi) for opt, x, gi in zip(rows, apart, g)]
    np.testing.assert_array_equal(together, np.stack(apart))
    with pytest.raises(ValueError, match="meta_lr must be > 0"):
        make_meta_optimizer("adam", np.array([0.1, -1.0]))


def test_adam_update_on_tensors_with_own_step_counts_equals_one_numpy_adam_per_row():
    """The batched runs' on-device Adam (tensors, one step count per run) and :class:`Adam` (NumPy)
    are one arithmetic: equal bit for bit; and Adam's first step moves each coordinate by
    ``lr * g / (|g| + eps)`` (both moments unbiased to ``g`` and ``g**2``)."""
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(3, 2, 4))
    rows = [make_meta_optimizer("adam", 0.05) for _ in range(2)]
    apart = [np.zeros(4), np.zeros(4)]
    u, m, s = (torch.zeros(2, 4, dtype=F64) for _ in range(3))
    t = torch.tensor([[0.0], [0.0]], dtype=F64)
    for k, g in enumerate(grads):
        active = [True, k != 1]  # the second run skips a step: its own step count
        apart = [opt.step(x, gi) if on else x for opt, x, gi, on in zip(rows, apart, g, active)]
        take = torch.tensor(active).unsqueeze(1)
        t_new = torch.where(take, t + 1, t)
        stepped, m_new, s_new = adam_update(u, torch.as_tensor(g), m, s, t_new, 0.05, 0.9, 0.999, 1e-8)
        u, m, s, t = (torch.where(take, a, b) for a, b in ((stepped, u), (m_new, m), (s_new, s), (t_new, t)))
    np.testing.assert_array_equal(u.numpy(), np.stack(apart))
    first, _, _ = adam_update(np.zeros(4), grads[0, 0], np.zeros(4), np.zeros(4), 1, 0.05, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(first, -0.05 * grads[0, 0] / (np.abs(grads[0, 0]) + 1e-8), rtol=1e-12)


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
    result = smd(mlp_apply, state, hyper, horizon=5, meta_steps=10,
                 batches=lookahead_batches(sampler, 5, deterministic=True),
                 optimizer=make_meta_optimizer(optimizer, 0.05))
    steps = np.diff(result.trajectory[:, 0])
    # Learning rate far too small: the hypergradient is negative and SMD raises the rate.
    assert np.all(result.hypergrads[:, 0] < 0)
    assert np.all(steps > 0) and result.lrs[-1] > result.lrs[0]
    # The first step of each optimizer has a known size along -sign(hypergradient).
    first = 0.05 * (1.0 if optimizer == "adam" else -np.clip(result.hypergrads[0, 0], -10, 10))
    assert steps[0] == pytest.approx(first, rel=1e-3)
    # A learning rate far too large is lowered.
    big = smd(mlp_apply, state, Hyperparameters(1.0, 0.5, learn=("lr",)), 5, 5,
              lookahead_batches(sampler, 5, deterministic=True), optimizer=make_meta_optimizer(optimizer, 0.05))
    assert np.all(big.hypergrads[:, 0] > 0) and np.all(np.diff(big.trajectory[:, 0]) < 0)


def test_smd_clips_and_projects():
    state, images, labels = convex_problem()
    sampler = BatchSampler(images, labels, 16, seed=1)
    hyper = Hyperparameters(1e-6, 0.5, learn=("lr", "momentum"))  # effective lr below 1e-4: projected
    result = smd(mlp_apply, state, hyper, 3, 4, lookahead_batches(sampler, 3),
                 optimizer=make_meta_optimizer("momentum", 1.0), clip=1e-3)
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

    result = smd(mlp_apply, state, Hyperparameters(0.1, 0.9), 3, 5, batch_fn)
    assert calls == list(range(5)) and len(result.meta_losses) == 5


def test_smd_reports_divergence():
    state, images, labels = mlp_problem()
    state = init_state(tuple(p.float() for p in state.params))
    sampler = BatchSampler(images.float(), labels, 16, seed=1)
    hyper = Hyperparameters(1e20, 0.99, learn=("lr",), space="raw")
    result = smd(mlp_apply, state, hyper, 20, 3, lookahead_batches(sampler, 20))
    assert result.diverged and result.diverged_meta_step == 0 and 0 < result.diverged_step < 20
    assert len(result.meta_losses) == 0


def test_smd_stops_on_a_non_finite_hypergradient_and_checks_lookahead_length(monkeypatch):
    import shortbias_lib.engine.hypergrad as hg

    state, images, labels = mlp_problem()
    sampler = BatchSampler(images, labels, 16, seed=1)
    real = hg.hypergradient

    def overflowed(*args, **kwargs):  # finite losses, tangents that overflowed
        result = real(*args, **kwargs)
        result.grad = np.array([np.nan])
        return result

    monkeypatch.setattr(hg, "hypergradient", overflowed)
    result = smd(mlp_apply, state, Hyperparameters(0.1, 0.9, learn=("lr",)), 4, 3, lookahead_batches(sampler, 4))
    assert result.diverged and result.diverged_meta_step == 0 and result.diverged_step == state.step + 4
    assert len(result.meta_losses) == 0
    monkeypatch.setattr(hg, "hypergradient", real)

    def short(m):  # a generator one batch short of the horizon
        return (b for b in batches_of(images, labels, 8, 3)), batches_of(images, labels, 8, 1)

    with pytest.raises(ValueError, match="horizon is 4"):
        smd(mlp_apply, state, Hyperparameters(0.1, 0.9), 4, 1, short)


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


@pytest.mark.parametrize("name", ["adam", "momentum"])
def test_meta_optimizer_state_round_trip_continues_the_same_path(name):
    """Stopping after 3 steps and continuing from state_dict gives the uninterrupted path."""
    grad = lambda u: np.array([2.0 * u[0] - 1.0, np.sin(u[1])])  # noqa: E731
    whole = META_OPTIMIZERS[name](lr=0.1)
    first = META_OPTIMIZERS[name](lr=0.1)
    assert set(first.state_dict()) and all(np.size(v) == 0 for k, v in first.state_dict().items()
                                           if k != "t")
    u = v = np.array([0.3, -0.7])
    for _ in range(3):
        u = whole.step(u, grad(u))
        v = first.step(v, grad(v))
    second = META_OPTIMIZERS[name](lr=0.1)
    second.load_state_dict({k: np.array(x) for k, x in first.state_dict().items()})
    for _ in range(4):
        u = whole.step(u, grad(u))
        v = second.step(v, grad(v))
    np.testing.assert_array_equal(u, v)


def test_smd_steps_back_on_divergence_when_asked(monkeypatch):
    """``on_divergence="step_back"``: NaN meta-loss, +clip on the learning rate, and SMD goes on."""
    import shortbias_lib.engine.hypergrad as hg

    state, images, labels = mlp_problem()
    real = hg.hypergradient

    def overflowed(*args, **kwargs):
        result = real(*args, **kwargs)
        result.grad = np.full_like(result.grad, np.nan)
        return result

    monkeypatch.setattr(hg, "hypergradient", overflowed)
    hyper = Hyperparameters(0.1, 0.9, learn=("momentum", "lr"))
    batch_fn = lambda m: (batches_of(images, labels, 8, 3), batches_of(images, labels, 8, 1))  # noqa: E731
    result = smd(mlp_apply, state, hyper, 3, 2, batch_fn, clip=5.0, on_divergence="step_back")
    assert not result.diverged and np.all(np.isnan(result.meta_losses))
    np.testing.assert_array_equal(result.hypergrads, [[0.0, 5.0], [0.0, 5.0]])
    assert result.trajectory[1, 1] == pytest.approx(result.trajectory[0, 1] - 0.01)
    assert result.trajectory[1, 0] == result.trajectory[0, 0]
    with pytest.raises(ValueError, match="on_divergence"):
        smd(mlp_apply, state, hyper, 3, 1, batch_fn, on_divergence="ignore")


def test_smd_resumed_from_its_history_continues_the_same_path():
    """Two meta steps, then two more from the history and the optimizer's state: the uninterrupted path."""
    state, images, labels = convex_problem()
    hyper = Hyperparameters(0.05, 0.5, learn=("lr", "momentum"))

    def batch_fn(m):
        return [(images[8 * m + 8 * i:8 * m + 8 * i + 8], labels[8 * m + 8 * i:8 * m + 8 * i + 8])
                for i in range(3)], [(images[:16], labels[:16])]

    whole = smd(mlp_apply, state, hyper, 3, 4, batch_fn)
    seen = []
    first = smd(mlp_apply, state, hyper, 3, 2, batch_fn, callback=lambda m, h: seen.append((m, len(h.meta_losses))))
    assert seen == [(0, 1), (1, 2)]
    optimizer = make_meta_optimizer("adam")
    optimizer.load_state_dict(first.optimizer.state_dict())
    rest = smd(mlp_apply, state, hyper, 3, 4, batch_fn, optimizer=optimizer, resume=first)
    np.testing.assert_array_equal(rest.trajectory, whole.trajectory)
    np.testing.assert_array_equal(rest.meta_losses, whole.meta_losses)
    np.testing.assert_array_equal(rest.hypergrads, whole.hypergrads)

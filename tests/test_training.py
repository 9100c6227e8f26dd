"""SGD-momentum state, the two conventions, schedules, divergence and batched runs."""

import math

import numpy as np
import pytest
import torch

from shortbias_lib.errors import DivergenceError
from shortbias_lib.engine.batches import BatchSampler
from shortbias_lib.engine.models import batched_loss, loss_fn, mean_loss, mlp_apply, mlp_init
from shortbias_lib.engine.schedules import Constant, ExponentialDecay, InverseTime
from shortbias_lib.engine.training import init_state, momentum_step, stack_params, train, train_batched


def problem(n=64, d=12, classes=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    params = mlp_init(g, sizes=(d, 8, classes), init_std=0.3, dtype=dtype)
    images = torch.randn(n, d, generator=g, dtype=dtype)
    labels = torch.randint(0, classes, (n,), generator=g)
    batches = [(images[i:i + 16], labels[i:i + 16]) for i in range(0, n, 16)]
    return params, images, labels, batches


def test_schedules():
    assert Constant(0.3)(17) == 0.3
    s = InverseTime(0.1, 2.0, K=10)
    for t in (0, 5, 100):
        assert s(t) == pytest.approx(0.1 / (1 + t / 10) ** 2)
    s = InverseTime(torch.tensor([0.1, 0.2]), torch.tensor([1.0, 0.0]), K=10)
    torch.testing.assert_close(s(10), torch.tensor([0.05, 0.2]))
    e = ExponentialDecay(0.1, 1e-4, steps=100, t0=50)
    assert e(0) == pytest.approx(0.1) and e(50) == pytest.approx(0.1)
    assert e(150) == pytest.approx(1e-4) and e(400) == pytest.approx(1e-4)
    assert e(100) == pytest.approx(math.sqrt(0.1 * 1e-4))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_learning_rates(bad):
    with pytest.raises(ValueError, match="lr"):
        Constant(bad)
    params, _, _, batches = problem()
    with pytest.raises(ValueError, match="lr"):
        train(mlp_apply, params, batches, 3, bad)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_invalid_momentum(bad):
    params, _, _, batches = problem()
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\)"):
        train(mlp_apply, params, batches, 3, 0.1, momentum=bad)


def test_invalid_steps_and_convention():
    params, _, _, batches = problem()
    with pytest.raises(ValueError, match="steps"):
        train(mlp_apply, params, batches, -1, 0.1)
    with pytest.raises(ValueError, match="convention"):
        train(mlp_apply, params, batches, 3, 0.1, convention="nesterov")
    with pytest.raises(ValueError, match="steps"):
        train_batched(mlp_apply, params, InverseTime(torch.tensor([0.1]), torch.tensor([1.0])), 0, batches)


def test_heavy_ball_matches_torch_optim_sgd():
    """The authors' convention is torch.optim.SGD with momentum (no dampening)."""
    params, _, _, batches = problem()
    schedule = InverseTime(0.2, 1.0, K=3)
    result = train(mlp_apply, params, batches, 8, schedule, 0.8, convention="heavy_ball")
    ref = [p.clone().requires_grad_(True) for p in params]
    opt = torch.optim.SGD(ref, lr=0.2, momentum=0.8)
    for t in range(8):
        for group in opt.param_groups:
            group["lr"] = schedule(t)
        opt.zero_grad()
        x, y = batches[t % len(batches)]
        loss_fn(mlp_apply, ref, x, y).backward()
        opt.step()
    for a, b in zip(result.state.params, ref):
        torch.testing.assert_close(a, b.detach())


def test_conventions_agree_for_constant_lr_and_differ_for_a_schedule():
    """v_heavy = -v_paper / alpha makes them equal at a constant rate; not when alpha varies."""
    params, _, _, batches = problem()
    paper = train(mlp_apply, params, batches, 6, 0.1, 0.9, convention="paper")
    heavy = train(mlp_apply, params, batches, 6, 0.1, 0.9, convention="heavy_ball")
    for a, b in zip(paper.state.params, heavy.state.params):
        torch.testing.assert_close(a, b)
    for a, b in zip(paper.state.velocity, heavy.state.velocity):
        torch.testing.assert_close(a, -0.1 * b)
    schedule = InverseTime(0.1, 3.0, K=1)
    paper = train(mlp_apply, params, batches, 6, schedule, 0.9, convention="paper")
    heavy = train(mlp_apply, params, batches, 6, schedule, 0.9, convention="heavy_ball")
    assert max(float((a - b).abs().max()) for a, b in zip(paper.state.params, heavy.state.params)) > 1e-6


def test_momentum_step_by_hand():
    w, v, g = (torch.tensor([1.0]),), (torch.tensor([0.5]),), (torch.tensor([2.0]),)
    nw, nv = momentum_step(w, v, g, 0.1, 0.9, "paper")
    assert float(nv[0]) == pytest.approx(0.9 * 0.5 - 0.1 * 2.0) and float(nw[0]) == pytest.approx(1 + 0.25)
    nw, nv = momentum_step(w, v, g, 0.1, 0.9, "heavy_ball")
    assert float(nv[0]) == pytest.approx(0.9 * 0.5 + 2.0) and float(nw[0]) == pytest.approx(1 - 0.1 * 2.45)



@pytest.mark.parametrize("convention", ["paper", "heavy_ball"])
def test_momentum_step_per_run_rates_equal_separate_steps(convention):
    """Rates and momenta of shape (S,) act on each stacked run as that run's own numbers, bit for bit;
    the in-place (foreach) form agrees up to rounding and updates the lists it is given."""
    g = torch.Generator().manual_seed(5)
    w, v, grads = ((torch.randn(3, 4, 2, generator=g), torch.randn(3, 2, generator=g)) for _ in range(3))
    lr, mu = torch.tensor([0.1, 0.02, 0.5]), torch.tensor([0.9, 0.0, 0.5])
    nw, nv = momentum_step(w, v, grads, lr, mu, convention)
    for s in range(3):
        one_w, one_v = momentum_step(tuple(t[s] for t in w), tuple(t[s] for t in v), tuple(t[s] for t in grads),
                                     float(lr[s]), float(mu[s]), convention)
        for a, b in zip(nw + nv, one_w + one_v):
            assert torch.equal(a[s], b)
    ref_w, ref_v = momentum_step(w, v, grads, 0.1, 0.9, convention)
    lists = [t.clone() for t in w], [t.clone() for t in v]
    momentum_step(*lists, grads, 0.1, 0.9, convention, inplace=True)
    for a, b in zip(lists[0] + lists[1], ref_w + ref_v):
        torch.testing.assert_close(a, b)


def test_train_records_losses_evaluations_and_resumes():
    params, images, labels, batches = problem()
    full = train(mlp_apply, params, batches, 10, 0.1, 0.9, eval_steps=[0, 5, 10],
                 eval_fn=lambda p: mean_loss(mlp_apply, p, images, labels))
    assert full.losses.shape == (10,) and list(full.eval_steps) == [0, 5, 10]
    assert full.eval_losses[-1] < full.eval_losses[0]
    first = train(mlp_apply, params, batches, 4, 0.1, 0.9)
    second = train(mlp_apply, first.state, batches, 6, 0.1, 0.9)
    assert second.state.step == 10
    np.testing.assert_allclose(np.r_[first.losses, second.losses], full.losses)


def test_divergence_is_recorded_not_raised():
    params, _, _, batches = problem()
    result = train(mlp_apply, params, batches, 200, 1e12, 0.99)
    assert result.diverged and 0 < result.diverged_step < 200
    from shortbias_lib.engine.training import diverged
    assert diverged(result.losses[-1]) and not np.any(diverged(result.losses[:-1]))
    assert result.state.step == result.diverged_step + 1
    with pytest.raises(DivergenceError, match=f"step {result.diverged_step}"):
        train(mlp_apply, params, batches, 200, 1e12, 0.99, raise_on_divergence=True)


def test_batch_sampler_is_an_epoch_without_replacement():
    images = torch.arange(20.0).reshape(20, 1)
    sampler = BatchSampler(images, torch.arange(20), batch_size=5, seed=3)
    seen = torch.cat([sampler()[1] for _ in range(4)])
    assert sorted(seen.tolist()) == list(range(20))
    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(images, torch.arange(20), batch_size=21)


@pytest.mark.parametrize("convention", ["paper", "heavy_ball"])
def test_train_batched_matches_separate_runs(convention):
    params, images, labels, batches = problem()
    alpha0 = torch.tensor([0.05, 0.2, 0.5], dtype=torch.float64)
    beta = torch.tensor([0.5, 2.0, 0.0], dtype=torch.float64)
    velocity = tuple(0.01 * torch.ones_like(p) for p in params)
    out = train_batched(mlp_apply, init_state(params, velocity), InverseTime(alpha0, beta, K=4), 9, batches, 0.9,
                        convention, record_steps=[0, 4, 9], chunk=2)
    for s in range(3):
        ref = train(mlp_apply, init_state(params, velocity), batches, 9,
                    InverseTime(float(alpha0[s]), float(beta[s]), K=4), 0.9, convention)
        np.testing.assert_allclose(out.losses[s, :2], ref.losses[[0, 4]], rtol=1e-10)
        final = loss_fn(mlp_apply, ref.state.params, *batches[9 % len(batches)]).item()
        assert out.losses[s, 2] == pytest.approx(final, rel=1e-10)
        for a, b in zip(out.params, ref.state.params):
            torch.testing.assert_close(a[s], b)
    assert not out.diverged.any() and (out.diverged_step == -1).all()


def test_train_batched_eval_fn_per_run_batches_and_divergence():
    params, images, labels, batches = problem()
    alpha0 = torch.tensor([0.1, 1e12], dtype=torch.float64)
    schedule = InverseTime(alpha0, torch.zeros(2, dtype=torch.float64))
    out = train_batched(mlp_apply, params, schedule, 60, batches, 0.99, record_steps=[0, 30, 60],
                        eval_fn=lambda p: batched_loss(mlp_apply, p, images, labels, chunk=20))
    assert out.diverged.tolist() == [False, True]
    assert 0 < out.diverged_step[1] <= 60
    assert np.all(np.isfinite(out.losses[0]))
    assert np.isnan(out.losses[1, -1])
    assert out.losses[0, 0] == pytest.approx(mean_loss(mlp_apply, params, images, labels))
    # Per-run batches: run s sees its own batch; compare with shared batches given separately.
    per_run = [(torch.stack([x, batches[(i + 1) % 4][0]]), torch.stack([y, batches[(i + 1) % 4][1]]))
               for i, (x, y) in enumerate(batches)]
    sched = InverseTime(torch.tensor([0.1, 0.1], dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    both = train_batched(mlp_apply, stack_params(params, 2), sched, 5, per_run, 0.9,
                         record_steps=[5], per_run_batches=True, stacked=True)
    shifted = [batches[(i + 1) % 4] for i in range(4)]
    one = train(mlp_apply, params, shifted, 5, 0.1, 0.9)
    for a, b in zip(both.params, one.state.params):
        torch.testing.assert_close(a[1], b)


def test_train_batched_moves_schedule_tensors_to_the_device_once():
    """The schedule's tensor parameters are copied to the device before the loop (so each
    step's rates are computed there); the caller's schedule is left as it was."""
    from shortbias_lib.engine.training import _schedule_on

    alpha0 = torch.tensor([0.1, 0.2], dtype=torch.float64)
    beta = torch.tensor([0.5, 1.0], dtype=torch.float64)
    schedule = InverseTime(alpha0, beta, K=7)
    assert _schedule_on(schedule, torch.device("cpu")) is schedule  # nothing to move
    moved = _schedule_on(schedule, torch.device("meta"))
    assert moved is not schedule and isinstance(moved, InverseTime) and moved.K == 7
    assert moved.alpha0.device.type == "meta" and moved.beta.device.type == "meta"
    assert schedule.alpha0.device.type == "cpu" and schedule.alpha0 is alpha0
    assert moved.lr(3).device.type == "meta"
    assert _schedule_on(Constant(0.1), torch.device("meta")).alpha == 0.1  # floats stay floats

    class Watching(InverseTime):
        devices = []

        def lr(self, t):
            self.devices.append(self.alpha0.device)
            return super().lr(t)

    params, images, labels, batches = problem()
    train_batched(mlp_apply, params, Watching(alpha0, beta, K=7), 3, batches, 0.9)
    assert Watching.devices and all(d == params[0].device for d in Watching.devices)


def test_train_leaves_the_callers_state_unchanged():
    """Training twice from one state gives the same run (the steps work on copies)."""
    generator = torch.Generator().manual_seed(3)
    params = mlp_init(generator, (6, 5, 3), 0.5, torch.float64)
    state = init_state(params, tuple(torch.full_like(p, 0.01) for p in params))
    before = [t.clone() for t in state.params + state.velocity]
    images = torch.rand(8, 6, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 3, (8,), generator=generator)
    first = train(mlp_apply, state, [(images, labels)], 5, 0.1)
    second = train(mlp_apply, state, [(images, labels)], 5, 0.1)
    for old, now in zip(before, state.params + state.velocity):
        assert torch.equal(old, now)
    np.testing.assert_array_equal(first.losses, second.losses)


def test_an_exploded_but_finite_loss_counts_as_diverged():
    """A loss of about 1e216 is still a float64 number; it must stop the run all the same."""
    generator = torch.Generator().manual_seed(4)
    params = mlp_init(generator, (6, 5, 3), 0.5, torch.float64)
    images = torch.rand(8, 6, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 3, (8,), generator=generator)

    def exploded(p, x):
        return 1e218 * mlp_apply(p, x)

    first = loss_fn(exploded, params, images, labels)
    assert torch.isfinite(first) and first > 1e200
    result = train(exploded, params, [(images, labels)], 5, 0.1)
    assert result.diverged and result.diverged_step == 0
    batched = train_batched(exploded, params, InverseTime(torch.tensor([0.1, 0.2]), torch.tensor([1.0, 1.0]), 10.0),
                            3, [(images, labels)], record_steps=[1, 3])
    assert batched.diverged.all() and np.all(batched.diverged_step == 0) and np.isnan(batched.losses).all()


def test_sampler_state_round_trip_continues_the_same_stream():
    """A sampler restored from state_dict mid-epoch yields the batches the original would."""
    images = torch.arange(23.0).reshape(23, 1)
    original = BatchSampler(images, torch.arange(23), batch_size=5, seed=4)
    original.take(6)                                   # into the second epoch
    saved = {k: np.array(v) for k, v in original.state_dict().items()}
    restored = BatchSampler(images, torch.arange(23), batch_size=5, seed=99)
    restored.load_state_dict(saved)
    for (xa, ya), (xb, yb) in zip(original.take(8), restored.take(8)):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)

"""Batched SMD (S runs as one tensor computation) against separate runs of Algorithm 1."""

import numpy as np
import pytest
import torch

from shortbias_lib.engine import batched_smd as bs
from shortbias_lib.engine.batches import BatchSampler
from shortbias_lib.engine.hvp import mlp_grad_hvp, mlp_grad_hvp_stacked
from shortbias_lib.engine.hypergrad import lookahead_batches, smd
from shortbias_lib.engine.hyperparams import Hyperparameters
from shortbias_lib.engine.meta_optim import Adam
from shortbias_lib.engine.models import mlp_apply, mlp_init
from shortbias_lib.engine.training import init_state

SIZES = (12, 8, 7, 5)


def problem(dtype, bad_example=1e10, seeds=(5, 2, 0), lrs=(0.3, 0.05, 0.1), momenta=(0.5, 0.9, 0.8)):
    """S = 3 runs, each with its own weights, velocity and meta sampler over shared data;
    one huge example (if ``bad_example``) makes some lookaheads diverge."""
    g = torch.Generator().manual_seed(0)
    states = []
    for _ in seeds:
        params = mlp_init(g, sizes=SIZES, init_std=1.0, dtype=dtype)
        velocity = tuple(0.01 * torch.randn(p.shape, generator=g, dtype=dtype) for p in params)
        states.append(init_state(params, velocity, step=7))
    x = torch.randn(60, SIZES[0], generator=g, dtype=dtype)
    if bad_example:
        x[7] *= bad_example
    y = torch.randint(0, SIZES[-1], (60,), generator=g)
    hypers = [Hyperparameters(a, m) for a, m in zip(lrs, momenta)]
    return states, x, y, seeds, hypers


def separate(states, x, y, seeds, hypers, horizon, meta_steps, adaptations, deterministic):
    """Each run alone: ``adaptations`` calls of ``hypergrad.smd`` sharing one Adam, as online SMD."""
    out = []
    for state, seed, hyper in zip(states, seeds, hypers):
        sampler = BatchSampler(x, y, 5, seed=seed)
        optimizer = Adam(1e-2)
        results = []
        for _ in range(adaptations):
            r = smd(mlp_apply, state, hyper, horizon, meta_steps,
                    lookahead_batches(sampler, horizon, deterministic=deterministic),
                    optimizer=optimizer, clip=10.0)
            results.append(r)
            hyper = r.hyper
        out.append((results, sampler, optimizer))
    return out


def batched(states, x, y, seeds, hypers, horizon, meta_steps, adaptations, deterministic, step=None):
    samplers = [BatchSampler(x, y, 5, seed=seed) for seed in seeds]
    params, velocity = bs.stack_runs(states)
    u = np.stack([h.vector() for h in hypers])
    adam = None
    results = []
    for _ in range(adaptations):
        drawn = bs.draw_meta_batches(samplers, meta_steps, horizon, deterministic=deterministic)
        r = bs.smd_batched(params, velocity, u, meta_steps, drawn, adam=adam, step=step)
        adam, u = r.adam, r.u()
        results.append(r)
    return results, samplers, adam


def compare(sep, bat, atol_u, rtol_loss, atol_m=1e-12):
    results, samplers, adam = bat
    settings = bs.MetaSettings()
    for s, (runs, sampler, optimizer) in enumerate(sep):
        for a, r in enumerate(runs):
            b = results[a]
            n = len(r.meta_losses)
            assert r.diverged == (b.stopped_meta[s] >= 0)
            assert (r.diverged_meta_step if r.diverged else -1) == b.stopped_meta[s]
            np.testing.assert_allclose(b.trajectory[s, :n + 1], r.trajectory, rtol=0, atol=atol_u)
            rest = b.trajectory[s, n:]  # a stopped run keeps its last u
            np.testing.assert_allclose(rest, np.broadcast_to(r.trajectory[-1], rest.shape), rtol=0, atol=atol_u)
            np.testing.assert_allclose(b.meta_losses[s, :n], r.meta_losses, rtol=rtol_loss)
            assert np.isnan(b.meta_losses[s, n:]).all()
        # the sampler stands where the separate run left it; Adam's state is the same
        np.testing.assert_array_equal(samplers[s].state_dict()["order"], sampler.state_dict()["order"])
        assert samplers[s].state_dict()["pos"] == sampler.state_dict()["pos"]
        np.testing.assert_array_equal(samplers[s].state_dict()["rng"], sampler.state_dict()["rng"])
        mine = adam.to_adam(s, settings)
        assert mine.t == optimizer.t
        np.testing.assert_allclose(mine.m, optimizer.m, rtol=rtol_loss, atol=atol_m)


def test_stacked_grad_hvp_matches_mlp_grad_hvp():
    g = torch.Generator().manual_seed(1)
    S, P, N = 3, 2, 9
    nets = [mlp_init(g, sizes=SIZES, init_std=0.5, dtype=torch.float64) for _ in range(S)]
    x = torch.randn(S, N, SIZES[0], generator=g, dtype=torch.float64)
    y = torch.randint(0, SIZES[-1], (S, N), generator=g)
    dirs = [tuple(torch.randn((P,) + p.shape, generator=g, dtype=torch.float64) for p in net) for net in nets]
    loss, grads, hvps = mlp_grad_hvp_stacked(tuple(torch.stack(t) for t in zip(*nets)), x, y,
                                             tuple(torch.stack(t) for t in zip(*dirs)))
    for s in range(S):
        want = mlp_grad_hvp(nets[s], x[s], y[s], dirs[s])
        torch.testing.assert_close(loss[s], want[0], rtol=1e-12, atol=1e-13)
        for got, ref in zip(grads + hvps, want[1] + want[2]):
            torch.testing.assert_close(got[s], ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("deterministic", [False, True], ids=["stochastic", "deterministic"])
def test_batched_smd_equals_separate_runs_float64(deterministic):
    """Float64: u to 1e-10, meta-losses to 1e-9 relative (measured: 1e-15); the same stops (one
    example is 1e15 times too large, so some lookaheads diverge: in the lookahead, and in the
    meta-objective only), samplers left at the same place, Adam's state the same."""
    case = problem(torch.float64, bad_example=1e15)
    sep = separate(*case, horizon=3, meta_steps=5, adaptations=2, deterministic=deterministic)
    steps = {r.diverged_step - 7 for runs, _, _ in sep for r in runs if r.diverged}
    assert steps & {0, 1, 2}  # a lookahead loss diverged
    if not deterministic:
        assert 3 in steps  # the meta-objective alone diverged (its batches were drawn)
    bat = batched(*case, horizon=3, meta_steps=5, adaptations=2, deterministic=deterministic)
    compare(sep, bat, atol_u=1e-10, rtol_loss=1e-9)


def test_batched_smd_equals_separate_runs_float32():
    """Float32 (rounding differs: fused kernels, one evaluation batch of E*B examples): u to 1e-6
    (measured 2e-8), meta-losses to 1e-5 relative (measured 1.4e-6), Adam's first moment to 1e-5."""
    case = problem(torch.float32, bad_example=0)
    sep = separate(*case, horizon=3, meta_steps=4, adaptations=1, deterministic=False)
    bat = batched(*case, horizon=3, meta_steps=4, adaptations=1, deterministic=False)
    compare(sep, bat, atol_u=1e-6, rtol_loss=1e-5, atol_m=1e-5)


@pytest.mark.slow
def test_compiled_meta_step_matches_eager():
    """``torch.compile(fullgraph=True)`` traces the whole meta step (no graph break, no host
    synchronisation) and gives the eager result (float64, 1e-10)."""
    states, x, y, seeds, hypers = problem(torch.float64)
    samplers = [BatchSampler(x, y, 5, seed=seed) for seed in seeds]
    params, velocity = bs.stack_runs(states)
    drawn = bs.draw_meta_batches(samplers, 3, 2)
    step = bs.compiled_meta_step(fullgraph=True)
    u = torch.as_tensor(np.stack([h.vector() for h in hypers]))
    adam = bs.BatchedAdamState.zeros(3)
    low, high = (torch.as_tensor(b) for b in bs.log_space_bounds())
    active = torch.ones(3, dtype=torch.bool)
    state_e = state_c = (u, adam.m, adam.s, adam.t, active)
    for m in range(3):
        out_e = bs.meta_step(params, velocity, *state_e, low, high, *drawn.at(m))
        out_c = step(params, velocity, *state_c, low, high, *drawn.at(m))
        assert step.compiled, step.reason
        for e, c in zip(out_e, out_c):
            torch.testing.assert_close(c, e, rtol=1e-10, atol=1e-10, equal_nan=True)
        state_e, state_c = out_e[:5], out_c[:5]

"""S offline SMD runs of one horizon batched (batched_offline_smd) against separate smd_trajectory runs."""

import math

import numpy as np
import pytest
import torch

from shortbias_lib.engine import batched_offline_smd as bo
from shortbias_lib.engine.batches import StepBatches
from shortbias_lib.engine.hyperparams import Hyperparameters
from shortbias_lib.engine.models import mlp_init
from shortbias_lib.engine.training import init_state
from shortbias_lib.experiments.offline.smd import smd_hyperparameters, smd_trajectory

SIZES = (12, 8, 7, 5)
HORIZON, META_STEPS, BATCH, BAD = 3, 4, 5, 7
FIELDS = ("u", "meta_loss", "hypergrad", "adam_m", "adam_s")


def problem(bad_example, K=3.0):
    """Weights with a velocity at step 7, 200 training examples (``BAD`` scaled by ``bad_example``),
    two objective chunks, and three starts whose schedules decay fast (K = 3: log(1 + t/K) from 1.2)."""
    g = torch.Generator().manual_seed(0)
    params = mlp_init(g, sizes=SIZES, init_std=1.0, dtype=torch.float64)
    velocity = tuple(0.01 * torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params)
    state = init_state(params, velocity, step=7)
    x = torch.randn(200, SIZES[0], generator=g, dtype=torch.float64)
    x[BAD] *= bad_example
    y = torch.randint(0, SIZES[-1], (200,), generator=g)
    xo = torch.randn(40, SIZES[0], generator=g, dtype=torch.float64)
    yo = torch.randint(0, SIZES[-1], (40,), generator=g)
    objective = [(xo[:20], yo[:20]), (xo[20:], yo[20:])]
    hypers = [smd_hyperparameters(a, b, K) for a, b in ((0.02, 0.5), (0.05, 1.5), (0.01, 0.05))]
    return state, x, y, objective, hypers


def draws_bad(x, y, seed, steps=HORIZON * META_STEPS):
    """Whether stream ``seed`` draws the example ``BAD`` within its first ``steps`` batches."""
    stream = StepBatches(x, y, BATCH, seed)
    return any(bool((stream.indices(t) == BAD).any()) for t in range(steps))


def seeds(x, y):
    """Three stream seeds: the first draws the scaled example, the other two do not."""
    hit = next(s for s in range(100) if draws_bad(x, y, s))
    miss = [s for s in range(100) if not draws_bad(x, y, s)][:2]
    return [hit] + miss


def separate(state, x, y, objective, hypers, stream_seeds, meta_lr=0.05):
    return [smd_trajectory(state, h, HORIZON, META_STEPS, StepBatches(x, y, BATCH, s), objective, meta_lr=meta_lr)
            for h, s in zip(hypers, stream_seeds)]


def batched(state, x, y, objective, hypers, stream_seeds, meta_steps=META_STEPS, own_copies=False, **kwargs):
    """``own_copies``: each stream over its own copy of the data (gathered run by run)."""
    copy = (lambda t: t.clone()) if own_copies else (lambda t: t)  # noqa: E731
    return bo.smd_trajectories_batched(state, hypers, HORIZON, meta_steps,
                                       [StepBatches(copy(x), copy(y), BATCH, s) for s in stream_seeds], objective,
                                       **kwargs)


def assert_same(got, want, rtol):
    for a, b in zip(got, want):
        for name in FIELDS:
            np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=1e-12, equal_nan=True, err_msg=name)
        assert int(a["adam_t"]) == int(b["adam_t"])


def test_batched_offline_smd_equals_separate_runs_with_a_step_back():
    """Float64, tolerance 1e-9 relative (atol 1e-12): the u paths, meta-losses, raw hypergradients
    and Adam's state of three starts of a fast-decaying schedule, one of whose lookaheads draws
    an example scaled by 1e35 (its loss passes training.LOSS_LIMIT): that meta step steps back
    (NaN meta-loss, hypergradient (clip, 0)) in the separate run and in the batched one alike,
    while the other runs' meta steps do not."""
    state, x, y, objective, hypers = problem(1e35)
    stream_seeds = seeds(x, y)
    want = separate(state, x, y, objective, hypers, stream_seeds)
    stepped_back = [np.isnan(r["meta_loss"]) for r in want]
    assert 0 < stepped_back[0].sum() < META_STEPS and not stepped_back[1].any() and not stepped_back[2].any()
    np.testing.assert_array_equal(want[0]["hypergrad"][stepped_back[0]], [[10.0, 0.0]] * stepped_back[0].sum())
    got = batched(state, x, y, objective, hypers, stream_seeds, meta_lr=0.05)
    assert_same(got, want, rtol=1e-9)


@pytest.mark.parametrize("own_copies", [False, True], ids=["shared-data", "own-data"])
def test_batched_offline_smd_follows_the_schedule(own_copies):
    """The decay matters here (beta's hypergradients are not negligible and differ between K = 3
    and K = 5000), and the batched runs equal the separate ones at K = 3 (1e-9 relative), with
    the streams over one data set or each over its own copy."""
    state, x, y, objective, hypers = problem(1.0)
    stream_seeds = [3, 4, 5]
    want = separate(state, x, y, objective, hypers, stream_seeds)
    slow = [smd_hyperparameters(h.lr, h.beta, 5000.0) for h in hypers]
    flat = separate(state, x, y, objective, slow, stream_seeds)
    for fast, plain in zip(want, flat):
        assert np.abs(fast["hypergrad"][:, 1]).max() > 1e-3
        assert np.abs(fast["hypergrad"][:, 1] - plain["hypergrad"][:, 1]).max() > 1e-3
    assert_same(batched(state, x, y, objective, hypers, stream_seeds, meta_lr=0.05, own_copies=own_copies), want,
                rtol=1e-9)


def test_batched_offline_smd_equals_separate_runs_float32():
    """Float32, the offline experiment's dtype (rounding differs: bmm against the fused kernels, the
    rates cast to float32): u to 1e-6 (measured 4e-9), meta-losses, hypergradients and Adam's
    moments to 1e-5 relative (measured 9e-7)."""
    state, x, y, objective, hypers = problem(1.0)
    state = init_state(tuple(p.float() for p in state.params), tuple(v.float() for v in state.velocity), step=7)
    x, objective = x.float(), [(a.float(), b) for a, b in objective]
    want = separate(state, x, y, objective, hypers, [3, 4, 5])
    got = batched(state, x, y, objective, hypers, [3, 4, 5], meta_lr=0.05)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a["u"], b["u"], rtol=0, atol=1e-6)
        for name in FIELDS[1:]:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-8, err_msg=name)


def test_schedule_rates_are_hyperparameters_at():
    """(alpha_t, mu, dalpha_t/du) of each run equal Hyperparameters.from_vector(u).at(t) (1e-14)."""
    hyper = smd_hyperparameters(0.03, 0.7, 3.0)
    u = torch.as_tensor(np.stack([hyper.vector(), hyper.vector() + [0.4, -1.1]]))
    for t in (0, 5, 40):
        alpha, mu, dalpha, dmu = bo.schedule_rates(u, hyper.momentum, math.log1p(t / hyper.K))
        assert dmu is None
        for s in range(2):
            a, m, da, dm = hyper.from_vector(u[s].numpy()).at(t)
            np.testing.assert_allclose([alpha[s], mu[s], *dalpha[s]], [a, m, *da], rtol=1e-14)
            assert dm == [0.0, 0.0]


def test_batched_offline_smd_resumes():
    """Continued from its returned dicts (each run's own checkpoint) equals one call of all the
    meta steps, with a meta step size that decays with the meta step's index (1e-12 relative);
    ``on_step`` sees every meta step and its snapshot is the state so far."""
    state, x, y, objective, hypers = problem(1e35)
    stream_seeds = seeds(x, y)
    rate = lambda m: 0.05 / (1 + m)  # noqa: E731
    whole = batched(state, x, y, objective, hypers, stream_seeds, meta_steps=META_STEPS, meta_lr=rate)
    seen = []
    part = batched(state, x, y, objective, hypers, stream_seeds, meta_steps=2, meta_lr=rate,
                   on_step=lambda done, snapshot: seen.append((done, snapshot())))
    assert [d for d, _ in seen] == [1, 2]
    assert_same(seen[-1][1], part, rtol=0)
    rest = batched(state, x, y, objective, hypers, stream_seeds, meta_steps=META_STEPS, meta_lr=rate, resume=part)
    assert_same(rest, whole, rtol=1e-12)
    # and the constant rate is not the decaying one: the test can tell them apart
    const = batched(state, x, y, objective, hypers, stream_seeds, meta_steps=META_STEPS, meta_lr=0.05)
    assert np.abs(const[1]["u"][-1] - whole[1]["u"][-1]).max() > 1e-4


def test_offline_meta_step_reads_nothing_back_to_the_host(monkeypatch):
    """Inside a meta step no tensor is read on the host (``item``, ``bool``, ``float``, ``int``,
    ``tolist``, ``numpy``, ``cpu`` raise there), the step back included: divergence flags stay
    tensors; the result is the unguarded one."""
    state, x, y, objective, hypers = problem(1e35)
    stream_seeds = seeds(x, y)
    want = batched(state, x, y, objective, hypers, stream_seeds, meta_lr=0.05)
    inner, calls = bo.offline_meta_step, []

    def forbidden(name):
        def read(*args, **kwargs):
            raise AssertionError(f"Tensor.{name} inside a meta step")
        return read

    def guarded(*args, **kwargs):
        calls.append(1)
        with monkeypatch.context() as patch:
            for name in ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__"):
                patch.setattr(torch.Tensor, name, forbidden(name))
            return inner(*args, **kwargs)

    monkeypatch.setattr(bo, "offline_meta_step", guarded)
    assert_same(batched(state, x, y, objective, hypers, stream_seeds, meta_lr=0.05), want, rtol=0)
    assert len(calls) == META_STEPS and any(np.isnan(r["meta_loss"]).any() for r in want)
    with monkeypatch.context() as patch:  # the guard itself bites
        patch.setattr(torch.Tensor, "__bool__", forbidden("__bool__"))
        with pytest.raises(AssertionError, match="__bool__"):
            bool(torch.ones(1))


@pytest.mark.slow
def test_compiled_lookahead_step_matches_eager():
    """``torch.compile(fullgraph=True)`` traces the lookahead step (no graph break, no host
    synchronisation), compiles it three times only (first, second, later steps: not per step),
    and gives the eager runs, step back included (float64, 1e-12; measured 2e-15)."""
    state, x, y, objective, hypers = problem(1e35)
    stream_seeds = seeds(x, y)
    step = bo.compiled_lookahead_step(fullgraph=True)
    want = batched(state, x, y, objective, hypers, stream_seeds, meta_lr=0.05)
    got = batched(state, x, y, objective, hypers, stream_seeds, meta_lr=0.05, step=step)
    assert step.compiled, step.reason
    for a, b in zip(got, want):
        for name in FIELDS:
            np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-12, equal_nan=True, err_msg=name)
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    assert len(_debug_get_cache_entry_list(bo.offline_lookahead_step.__code__)) == 3


def test_batched_offline_smd_checks_its_inputs():
    state, x, y, objective, hypers = problem(1.0)
    streams = [StepBatches(x, y, BATCH, s) for s in range(3)]
    with pytest.raises(ValueError, match="log space"):
        bo.smd_trajectories_batched(state, [Hyperparameters(0.1, 0.9)] * 3, HORIZON, 1, streams, objective)
    with pytest.raises(ValueError, match="one K"):
        bo.smd_trajectories_batched(state, hypers[:2] + [smd_hyperparameters(0.1, 1.0, 9.0)], HORIZON, 1,
                                    streams, objective)
    done = bo.smd_trajectories_batched(state, hypers, HORIZON, 1, streams, objective)
    with pytest.raises(ValueError, match="same meta step"):
        bo.smd_trajectories_batched(state, hypers, HORIZON, 2, streams, objective,
                                    resume=done[:2] + [{**done[2], "meta_loss": np.zeros(0)}])

"""S online SMD runs (Section 3.3) advanced together: :func:`online_batched_runs`.

The same runs as :func:`~shortbias_lib.experiments.online.loop.online_run` for several initial
rates in one mode, with the two heavy parts batched over the runs: every
adaptation is one :func:`~shortbias_lib.engine.batched_smd.smd_batched` over the live
runs (each with its own meta sampler and Adam state), and every stretch of
training between adaptations and evaluations is one
:func:`~shortbias_lib.engine.training.train_batched` with each run's own rate, momentum
and training sampler. The bookkeeping (records, evaluations, the schedule after
adaptation, divergence) is each run's own
:class:`~shortbias_lib.experiments.online.record.OnlineProgress`, as in the separate loop, so
each batched run equals its separate run up to rounding (tested in float64).
The MNIST MLP only (:func:`~shortbias_lib.engine.models.mlp_apply`), paper convention,
no checkpointing.
"""

import time

import numpy as np
import torch

from ...engine import batched_smd, training
from ...engine.hyperparams import Hyperparameters
from ...engine.meta_optim import make_meta_optimizer
from ...engine.models import mlp_apply
from .loop import OnlineSettings, _next_stop
from .record import OnlineProgress
from ...engine.schedules import Schedule


class _RunSchedules(Schedule):
    """Each run's own schedule, read at the global step ``t0 + t``: ``lr(t)`` of shape (S,)."""

    def __init__(self, schedules, t0):
        self.schedules, self.t0 = schedules, t0

    def lr(self, t):
        return torch.tensor([float(s(self.t0 + t)) for s in self.schedules], dtype=torch.float64)


class _Trained:
    """One run's stretch of training, as :meth:`OnlineProgress.train_until` reads a
    :class:`~shortbias_lib.engine.training.TrainResult`."""

    def __init__(self, state, losses, lrs, t, bad):
        """``bad``: the diverged step within the stretch from ``t`` (-1: none)."""
        self.state, self.diverged, self.diverged_step = state, bad >= 0, t + bad if bad >= 0 else -1
        keep = bad + 1 if bad >= 0 else len(losses)
        self.losses, self.lrs = losses[:keep], lrs[:keep]


def online_batched_runs(params, train_samplers, meta_samplers, lrs, momentum=0.9, *,
                        settings=OnlineSettings(), eval_fn=None, test_fn=None, labels=None, step=None):
    """S online runs from the same ``params``, one per initial rate in ``lrs``, advanced together.

    ``train_samplers`` and ``meta_samplers`` are one
    :class:`~shortbias_lib.engine.batches.BatchSampler` per run (as each separate
    :func:`~shortbias_lib.experiments.online.loop.online_run` would get; same data);
    ``eval_fn``/``test_fn`` as there. ``step`` is the meta step (default
    :func:`~shortbias_lib.engine.batched_smd.meta_step_for` the parameters' device: compiled
    on CUDA, eager on the CPU; or a :func:`~shortbias_lib.engine.batched_smd.compiled_meta_step`
    with the same settings). Returns the list of
    :class:`~shortbias_lib.experiments.online.record.OnlineRun`, one per rate.
    """
    s = settings
    if s.convention != "paper":
        raise ValueError("online_batched_runs implements the paper convention only")
    lrs = [float(training.check_lr(a, "lr")) for a in lrs]
    S = len(lrs)
    if not (len(train_samplers) == len(meta_samplers) == S):
        raise ValueError(f"one train and one meta sampler per rate: {S} rates, {len(train_samplers)} "
                         f"and {len(meta_samplers)} samplers")
    training.check_momentum(momentum)
    labels = labels or [f"{s.mode} lr={a:g}" for a in lrs]
    started = time.perf_counter()
    runs = []
    for a in lrs:
        hyper = Hyperparameters(lr=a, momentum=float(momentum), learn=("lr", "momentum"), space="log")
        if s.mode != "baseline":
            hyper = hyper.from_vector(np.clip(hyper.vector(), *hyper.bounds()))
        runs.append(OnlineProgress.start(params, hyper, s.steps))
    adam = make_meta_optimizer("adam", s.meta_lr)
    settings_meta = batched_smd.MetaSettings.of(adam, s.clip)
    device = params[0].device
    adam_state = batched_smd.BatchedAdamState.zeros(S, device)
    step = batched_smd.meta_step_for(device, settings_meta) if step is None else step
    w = training.stack_params(params, S)
    v = tuple(torch.zeros_like(p) for p in w)
    live = np.ones(S, dtype=bool)      # still training
    broke = np.zeros(S, dtype=bool)    # left the loop by a diverged evaluation or training step
    t = 0
    while t < s.steps and live.any():
        if t % s.eval_every == 0:
            for k in np.flatnonzero(live):
                if not runs[k].evaluate(eval_fn, s.chance_patience):
                    live[k], broke[k] = False, True
            if not live.any():
                break
        idx = np.flatnonzero(live)
        adapting = t < s.adapt_until
        if adapting and s.mode != "baseline" and t % s.adapt_every == 0:
            _adapt(runs, idx, w, v, meta_samplers, adam_state, settings_meta, s, step)
        nxt = _next_stop(t, s, adapting)
        plans = [runs[k].schedule(adapting, s.decay, s.final_lr, s.adapt_until, s.steps) for k in idx]
        mus = torch.tensor([mu for _, mu in plans], dtype=torch.float64)
        sub = torch.as_tensor(idx, device=device)
        start = training.TrainState(tuple(p[sub] for p in w), tuple(q[sub] for q in v))
        samplers = [train_samplers[k] for k in idx]
        result = training.train_batched(
            mlp_apply, start, _RunSchedules([sched for sched, _ in plans], t), nxt - t,
            lambda _t: _stacked(samplers), momentum=mus, convention="paper",
            record_steps=range(nxt - t), per_run_batches=True, stacked=True)
        lrs_used = np.array([[float(sched(t + i)) for i in range(nxt - t)] for sched, _ in plans])
        for j, k in enumerate(idx):
            bad = int(result.diverged_step[j])
            state = training.TrainState(tuple(p[j] for p in result.params),
                                        tuple(q[j] for q in result.velocity), nxt)
            trained = _Trained(state, result.losses[j], lrs_used[j], t, bad)
            runs[k].train_until(nxt, trained, plans[j][1])
            if runs[k].diverged_step >= 0:
                live[k], broke[k] = False, True
        w = tuple(p.index_copy(0, sub, r) for p, r in zip(w, result.params))
        v = tuple(q.index_copy(0, sub, r) for q, r in zip(v, result.velocity))
        t = nxt
    seconds = time.perf_counter() - started
    out = []
    for k, run in enumerate(runs):
        if not broke[k]:
            run.evaluate(eval_fn)
        out.append(run.result(labels[k], s.mode, lrs[k], momentum, s.adapt_until, test_fn, seconds))
    return out


def _stacked(samplers):
    """The next training batch of each run, stacked: (S, B, ...) and (S, B)."""
    drawn = [sampler() for sampler in samplers]
    return torch.stack([x for x, _ in drawn]), torch.stack([y for _, y in drawn])


def _adapt(runs, idx, w, v, meta_samplers, adam_state, meta_settings, s, step):
    """One adaptation of the live runs ``idx``: batched SMD from their weights, then each run's
    :meth:`OnlineProgress.adapt` with what its separate :func:`~shortbias_lib.engine.hypergrad.smd` returns."""
    device = w[0].device
    sub = torch.as_tensor(idx, device=device)
    params = tuple(p[sub] for p in w)
    velocity = tuple(q[sub] for q in v)
    u = np.stack([np.clip(runs[k].hyper.vector(), *runs[k].hyper.bounds()) for k in idx])
    adam = batched_smd.BatchedAdamState(adam_state.m[sub], adam_state.s[sub], adam_state.t[sub])
    samplers = [meta_samplers[k] for k in idx]
    if s.meta_batches != "fresh":
        raise ValueError("online_batched_runs draws fresh minibatches at every meta step (meta_batches='fresh')")
    drawn = batched_smd.draw_meta_batches(samplers, s.meta_steps, s.horizon, s.n_eval,
                                          deterministic=s.mode == "deterministic")
    result = batched_smd.smd_batched(params, velocity, u, s.meta_steps, drawn, adam=adam,
                                     settings=meta_settings, step=step)
    adam_state.m[sub], adam_state.s[sub], adam_state.t[sub] = adam.m, adam.s, adam.t
    for j, k in enumerate(idx):
        stopped = int(result.stopped_meta[j])
        n = stopped if stopped >= 0 else s.meta_steps
        runs[k].adapt(_SMDOutcome(runs[k].hyper.from_vector(result.trajectory[j, -1]),
                                  result.meta_losses[j, :n], stopped >= 0))


class _SMDOutcome:
    """What :meth:`OnlineProgress.adapt` reads of an :class:`~shortbias_lib.engine.hypergrad.SMDResult`."""

    def __init__(self, hyper, meta_losses, diverged):
        self.hyper, self.meta_losses, self.diverged = hyper, meta_losses, diverged

"""S offline SMD runs of one horizon advanced together: one batched tensor computation per meta step.

The offline experiment's SMD (Section 3.2's schedule ``alpha_t = alpha_0 / (1 + t/K)^beta``,
learning ``u = (log alpha_0/(1-mu), log beta)`` with mu fixed) from S starting points that
share the weights and the horizon; each run has its own ``u``, its own minibatch stream and
its own Adam state. Every meta step restarts the lookahead from the same weights, draws
its T minibatches one at a time (T is up to 5,000: never ``(S, T, B, ...)`` at once), steps
all runs with :func:`~shortbias_lib.engine.batched_smd.lookahead_step` at each run's rate of
that step (:func:`schedule_rates`), differentiates the mean loss at ``w_T`` on fixed
objective batches, and applies the rule of :func:`~shortbias_lib.engine.hypergrad.smd`'s
``on_divergence="step_back"`` per run (a run whose lookahead losses or meta-objective diverge,
:func:`~shortbias_lib.engine.training.diverged`, or whose hypergradient is not finite takes a
hypergradient of ``+clip`` on the rate, 0 on beta, with a NaN meta-loss),
then clip, Adam (:func:`~shortbias_lib.engine.meta_optim.adam_update`) and the bounds, all on
the device without a host synchronisation. The lookahead step is a pure tensor function
(:func:`offline_lookahead_step`) that also runs compiled (:func:`compiled_lookahead_step`: one
CUDA graph replay per step on a GPU). :func:`smd_trajectories_batched` is
:func:`~shortbias_lib.experiments.offline.smd.smd_trajectory` for S runs: same inputs per run,
same resumable state dicts out, equal to the separate runs to rounding
(``tests/test_batched_smd_offline.py``).
"""

import math

import numpy as np
import torch

from .batched_smd import compiled, lookahead_step, stack_runs
from .hvp import mlp_grad_hvp_stacked
from .hyperparams import Hyperparameters
from .meta_optim import adam_update, rate_at
from .training import TrainState, check_steps, diverged, init_state

LEARN = ("lr", "beta")
ADAM = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}  # meta_optim.Adam's defaults, as smd_trajectory uses them


def schedule_bounds():
    """``(low, high)`` of ``u = (log alpha_0/(1-mu), log beta)``: :meth:`Hyperparameters.bounds`."""
    return Hyperparameters(0.1, 0.9, beta=1.0, learn=LEARN, space="log").bounds()


def schedule_rates(u, momentum, log_decay):
    """``(alpha_t, mu, dalpha_t/du, None)`` of S runs at a step where ``log(1 + t/K) = log_decay``.

    :meth:`Hyperparameters.from_vector` then :meth:`Hyperparameters.at` for ``learn=("lr", "beta")``
    in log space, same arithmetic, in ``u``'s dtype (``u`` (S, 2)); ``None``: mu is not learned.
    """
    alpha0 = torch.exp(u[:, 0]) * (1.0 - momentum)
    beta = torch.exp(u[:, 1])
    alpha = alpha0 * torch.exp(-beta * log_decay)
    dalpha = torch.stack([alpha, -alpha * beta * log_decay], 1)
    return alpha, torch.full_like(alpha, momentum), dalpha, None


def offline_lookahead_step(phase, w, v, dw, dv, images, labels, u, momentum, log_decay):
    """One lookahead step of S runs at their schedules' rates, a pure tensor function:
    :func:`~shortbias_lib.engine.batched_smd.lookahead_step` at :func:`schedule_rates`.

    ``phase`` is 0 at the first step and 1 at every later one (``dw`` then summed out of
    place: no input is modified, so that the step compiles, or is captured in a CUDA graph,
    once for all of them); ``log_decay`` is a 0-d tensor.
    """
    return lookahead_step(phase, w, v, dw, dv, images, labels, schedule_rates(u, momentum, log_decay))


def compiled_lookahead_step(mode=None, fullgraph=True):
    """:func:`offline_lookahead_step` under ``torch.compile`` (eager where compiling fails:
    :func:`~shortbias_lib.engine.batched_smd.compiled`); ``mode="reduce-overhead"`` on a GPU
    replays each lookahead step as one CUDA graph. Three graphs: the first step, the second
    (its ``dw`` is the first's ``dv``) and the others."""
    return compiled(offline_lookahead_step, mode, fullgraph, dynamic=False)


def offline_meta_step(params, velocity, u, adam_m, adam_s, adam_t, low, high, step_batches, objective_batches,
                      *, t0, K, momentum, meta_lr, clip=10.0, step=offline_lookahead_step):
    """One offline meta step of S runs from the same stacked weights; no host synchronisation
    (but the streams' own: a :class:`~shortbias_lib.engine.batches.StepBatches` copies each
    epoch's permutation to the device, once per epoch).

    ``u``, ``adam_m``, ``adam_s`` (S, 2) float64, ``adam_t`` (S,) float64; ``step_batches(i)``
    gives lookahead step i's ``(images (S, B, ...), labels (S, B))`` for i < T (the horizon:
    ``step_batches.horizon``); ``objective_batches`` a list of ``(images, labels)`` shared by
    all runs (the meta-objective is the mean of their mean losses). The schedule is read at
    steps ``t0, ..., t0 + T - 1``. Returns ``(u, adam_m, adam_s, adam_t, meta_loss, hypergrad)``,
    the last two as :func:`~shortbias_lib.engine.hypergrad.smd` records them (step back: NaN,
    ``(clip, 0)``). ``step`` is :func:`offline_lookahead_step` or a :func:`compiled_lookahead_step`.
    """
    w, v = tuple(params), tuple(velocity)
    dw = dv = None
    bad = torch.zeros(u.shape[0], dtype=torch.bool, device=u.device)
    T = step_batches.horizon
    log_decays = torch.log1p((t0 + torch.arange(T, dtype=torch.float64, device=u.device)) / K)
    for i in range(T):
        images, labels = step_batches(i)
        loss, w, v, dw, dv = step(min(i, 1), w, v, dw, dv, images, labels, u, momentum, log_decays[i])
        bad = bad | diverged(loss)
    meta, grad = _meta_objective(w, dw, objective_batches)
    ok = ~(bad | diverged(meta) | ~torch.isfinite(grad).all(1))
    step_back = torch.zeros_like(grad)
    step_back[:, 0] = clip
    grad = torch.where(ok.unsqueeze(1), grad, step_back)
    meta = torch.where(ok, meta, torch.full_like(meta, math.nan))
    t = adam_t + 1
    stepped, m, s = adam_update(u, grad.clamp(-clip, clip), adam_m, adam_s, t.unsqueeze(1), meta_lr,
                                ADAM["beta1"], ADAM["beta2"], ADAM["eps"])
    return torch.minimum(torch.maximum(stepped, low), high), m, s, t, meta, grad


def _meta_objective(w, dw, objective_batches):
    """Mean loss at ``w_T`` (S,) over the shared batches and its hypergradient ``dL/du`` (S, P), float64."""
    S, P = w[0].shape[0], dw[0].shape[1]
    meta, gsum, n = None, None, 0
    for images, labels in objective_batches:
        x = images.unsqueeze(0).expand((S,) + images.shape)
        loss, g, _ = mlp_grad_hvp_stacked(w, x, labels.unsqueeze(0).expand(S, -1))
        meta = loss.double() if meta is None else meta + loss.double()
        gsum = g if gsum is None else tuple(a + b for a, b in zip(gsum, g))
        n += 1
    if n < 1:
        raise ValueError("objective_batches gave no batch")
    grad = sum(torch.bmm(d.reshape(S, P, -1), e.reshape(S, -1, 1)).squeeze(-1) for d, e in zip(dw, gsum)) / n
    return meta / n, grad.double()


class _StackedSteps:
    """Meta step m's lookahead batches of S streams: step i is stream s's batch ``m * T + i``,
    gathered with one index when the streams share their data (:class:`StepBatches`)."""

    def __init__(self, streams, horizon):
        self.streams, self.horizon, self.m = streams, horizon, 0
        first = streams[0]
        self.shared = all(hasattr(s, "indices") and s.images is first.images and s.labels is first.labels
                          for s in streams)

    def __call__(self, i):
        t = self.m * self.horizon + i
        if self.shared:
            first = self.streams[0]
            index = torch.stack([s.indices(t) for s in self.streams]).to(first.labels.device)
            return first.images[index], first.labels[index]
        parts = [s(t) for s in self.streams]
        return torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts])


def smd_trajectories_batched(state, hypers, horizon, meta_steps, batches, objective_batches, *, meta_lr=0.01,
                             clip=10.0, convention="paper", resume=None, on_step=None, step=None):
    """:func:`~shortbias_lib.experiments.offline.smd.smd_trajectory` for S starting points at once.

    ``state``: the shared weights (a :class:`TrainState`: the schedule is read from its step on);
    ``hypers``: S :class:`Hyperparameters` with ``learn=("lr", "beta")`` in log space, one
    momentum and one K; ``batches``: S streams ``t -> (images, labels)`` (e.g.
    :class:`~shortbias_lib.engine.batches.StepBatches`), meta step m of run s training on its
    stream's batches ``m * horizon ... (m + 1) * horizon - 1``; ``objective_batches`` shared.
    ``meta_lr`` is Adam's rate, a number or a function ``m -> rate`` of the meta step's index
    (counting resumed ones). ``resume``: S dicts of earlier calls (all at the same meta step);
    ``on_step(done, snapshot)`` is called after each meta step, ``snapshot()`` reading the S
    dicts so far from the device. Returns S dicts as ``smd_trajectory``'s: ``u`` (M+1, 2),
    ``meta_loss`` (M,), ``hypergrad`` (M, 2), ``adam_m``, ``adam_s``, ``adam_t``. ``step`` is the
    lookahead step (default :func:`offline_lookahead_step`, eager; or a :func:`compiled_lookahead_step`).
    """
    horizon = check_steps(horizon, "horizon")
    meta_steps = check_steps(meta_steps, "meta_steps", minimum=0)
    if convention != "paper":
        raise ValueError(f"the batched offline SMD has the paper convention only; got {convention!r}")
    if not clip > 0:
        raise ValueError(f"clip must be > 0; got {clip!r}")
    hypers = list(hypers)
    S = len(hypers)
    if S < 1 or len(batches) != S or (resume is not None and len(resume) != S):
        raise ValueError("hypers, batches (and resume) must hold one entry per run, at least one")
    first = hypers[0]
    if any(h.learn != LEARN or h.space != "log" or h.momentum != first.momentum or h.K != first.K for h in hypers):
        raise ValueError("hypers must learn ('lr', 'beta') in log space with one momentum and one K")
    if not isinstance(state, TrainState):
        state = init_state(state)
    device = state.params[0].device
    params, velocity = stack_runs([state] * S)
    low, high = (torch.as_tensor(b, dtype=torch.float64, device=device) for b in schedule_bounds())
    history = _History.start(hypers, resume, low, high, device)
    steps = _StackedSteps(list(batches), horizon)
    u, (m_, s_, t_) = history.path[-1], history.adam
    for m in range(history.done, meta_steps):
        steps.m = m
        u, m_, s_, t_, meta, grad = offline_meta_step(
            params, velocity, u, m_, s_, t_, low, high, steps, objective_batches,
            t0=state.step, K=float(first.K), momentum=float(first.momentum), meta_lr=rate_at(meta_lr, m), clip=clip,
            step=offline_lookahead_step if step is None else step)
        history.add(u, meta, grad, (m_, s_, t_))
        if on_step is not None:
            on_step(m + 1, history.dicts)
    return history.dicts()


class _History:
    """The S paths so far on the device (u, meta-losses, hypergradients, Adam's state) and
    their reading as ``smd_trajectory``'s dicts."""

    def __init__(self, path, metas, grads, adam, done):
        self.path, self.metas, self.grads, self.adam, self.done = path, metas, grads, adam, done

    @classmethod
    def start(cls, hypers, resume, low, high, device):
        f64 = {"dtype": torch.float64, "device": device}
        S = len(hypers)
        if resume is None:
            u = torch.as_tensor(np.stack([h.vector() for h in hypers]), **f64)
            zeros = torch.zeros(S, 2, **f64)
            return cls([torch.minimum(torch.maximum(u, low), high)], [], [], (zeros, zeros.clone(),
                                                                              torch.zeros(S, **f64)), 0)
        done = {len(np.asarray(r["meta_loss"])) for r in resume}
        if len(done) != 1:
            raise ValueError(f"resume must hold runs at the same meta step; got {sorted(done)}")
        done = done.pop()
        paths = np.stack([np.asarray(r["u"], dtype=np.float64).reshape(-1, 2) for r in resume], 1)  # (M+1, S, 2)
        metas = np.stack([np.asarray(r["meta_loss"], dtype=np.float64) for r in resume], 1)
        grads = np.stack([np.asarray(r["hypergrad"], dtype=np.float64).reshape(-1, 2) for r in resume], 1)
        t = torch.as_tensor([float(r["adam_t"]) for r in resume], **f64)
        moments = [torch.as_tensor(np.stack([_moment(r[f"adam_{k}"]) for r in resume]), **f64) for k in "ms"]
        return cls(list(torch.as_tensor(paths, **f64)), list(torch.as_tensor(metas, **f64)),
                   list(torch.as_tensor(grads, **f64)), (moments[0], moments[1], t), done)

    def add(self, u, meta, grad, adam):
        self.path.append(u)
        self.metas.append(meta)
        self.grads.append(grad)
        self.adam = adam
        self.done += 1

    def dicts(self):
        S = self.path[0].shape[0]
        u = torch.stack(self.path, 1).cpu().numpy()
        metas = torch.stack(self.metas, 1).cpu().numpy() if self.metas else np.zeros((S, 0))
        grads = torch.stack(self.grads, 1).cpu().numpy() if self.grads else np.zeros((S, 0, 2))
        m, s, t = (x.cpu().numpy() for x in self.adam)
        return [{"u": u[r], "meta_loss": metas[r], "hypergrad": grads[r],
                 "adam_m": m[r] if t[r] > 0 else np.zeros(0), "adam_s": s[r] if t[r] > 0 else np.zeros(0),
                 "adam_t": np.asarray(int(t[r]))} for r in range(S)]


def _moment(value):
    """An Adam moment of a saved state: empty before the first step (zeros then)."""
    value = np.asarray(value, dtype=np.float64)
    return value if value.size else np.zeros(2)

"""S independent SMD runs advanced together: Algorithm 1's meta step as one batched tensor function.

The GPU path of online SMD (Section 3.3) on the MNIST MLP, paper convention, learning
``u = (log alpha_eff, log(1 - mu))`` with a constant rate over the lookahead. The runs
are stacked on a leading axis S; :func:`meta_step` is one meta step of all of them
(lookahead with the two tangents, meta-objective, clip, Adam's arithmetic
(:func:`~shortbias_lib.engine.meta_optim.adam_update`, :class:`~shortbias_lib.engine.meta_optim.Adam`'s),
bounds, and :func:`~shortbias_lib.engine.hypergrad.smd`'s ``on_divergence="stop"`` as a per-run
mask), a pure tensor function with no host synchronisation that runs eagerly or under
``torch.compile`` (:func:`compiled_meta_step`, eager fallback; :func:`meta_step_for` picks per
device). :func:`smd_batched` runs M meta steps, reading the device once;
:func:`draw_meta_batches` draws each run's minibatches from its own sampler in the separate
run's order, so a batched run equals its separate run.
Whole online runs: :mod:`shortbias_lib.experiments.online.batched`.
"""

import functools
import itertools
from dataclasses import dataclass

import numpy as np
import torch

from .hvp import mlp_grad_hvp_stacked
from .hypergrad import CHECK_EVERY, lookahead_batches
from .hyperparams import Hyperparameters
from .meta_optim import Adam, adam_update
from .training import check_steps, diverged

LEARN = ("lr", "momentum")


def log_space_bounds():
    """``(low, high)`` of ``u = (log alpha_eff, log(1 - mu))``: :meth:`Hyperparameters.bounds`."""
    return Hyperparameters(0.1, 0.9, learn=LEARN, space="log").bounds()


def rates(u):
    """``(alpha, mu, dalpha/du, dmu/du)`` of each run from ``u`` (S, 2): shapes (S,), (S,), (S, 2), (S, 2).

    :meth:`Hyperparameters.from_vector` then :meth:`Hyperparameters.at` with ``beta = 0``,
    same arithmetic, in ``u``'s dtype.
    """
    one_minus = torch.exp(u[:, 1])
    mu = 1.0 - one_minus
    alpha = torch.exp(u[:, 0]) * one_minus
    dalpha = torch.stack([alpha, alpha], 1)
    dmu = torch.stack([torch.zeros_like(mu), -(1.0 - mu)], 1)
    return alpha, mu, dalpha, dmu


def _per_run(value, like, lead=1):
    """``value`` of shape (S,) or (S, P) shaped to broadcast over ``like`` and cast to its dtype."""
    return value.to(like.dtype).view(value.shape + (1,) * (like.dim() - lead))


def lookahead(params, velocity, u, images, labels):
    """The lookahead of S runs with its tangents: ``(w_T, dw_T, losses)``.

    ``params``/``velocity``: tuples of ``(S,) + shape``; ``images`` ``(S, T, B, ...)``,
    ``labels`` ``(S, T, B)``. Returns the weights after T steps, their tangents
    ``(S, 2) + shape`` with respect to ``u``, and the minibatch losses ``(S, T)``
    (before each step): :func:`lookahead_step` T times at the constant :func:`rates`.
    """
    step_rates = rates(u)
    w, v = tuple(params), tuple(velocity)
    dw = dv = None
    losses = []
    for i in range(images.shape[1]):
        loss, w, v, dw, dv = lookahead_step(i, w, v, dw, dv, images[:, i], labels[:, i], step_rates)
        losses.append(loss)
    return w, dw, torch.stack(losses, 1)


def lookahead_step(i, w, v, dw, dv, images, labels, step_rates):
    """Step ``i`` of S runs' lookahead with its tangents: ``(loss, w, v, dw, dv)``.

    ``w``, ``v``: tuples of ``(S,) + shape``; ``dw``, ``dv`` their tangents ``(S, P) + shape``
    (``None`` at the first step, where they are zero); ``images`` ``(S, B, ...)``, ``labels``
    ``(S, B)``; ``step_rates = (alpha, mu, dalpha, dmu)`` of this step, shapes (S,), (S,),
    (S, P), (S, P) (``dmu`` ``None``: mu is not learned). ``loss`` (S,) is the minibatch loss
    before the step. Per run and direction j::

        dv' = mu dv - alpha H dw + dmu_j v - dalpha_j g,   v' = mu v - alpha g,
        w' = w + v',   dw' = dw + dv'

    (:func:`~shortbias_lib.engine.hypergrad.paper_tangent_step`.)
    """
    alpha, mu, dalpha, dmu = step_rates
    loss, g, hdw = mlp_grad_hvp_stacked(w, images, labels, dw)
    a = [_per_run(alpha, p) for p in w]
    m = [_per_run(mu, p) for p in w]
    da = [_per_run(dalpha, p.unsqueeze(1), 2) for p in w]
    dm = None if dmu is None else [_per_run(dmu, p.unsqueeze(1), 2) for p in w]
    # In place only on tensors made here (hdw, the new dv, dw from the second step on):
    # fewer passes over the (S, P) + shape tangents when eager, the same graph when compiled.
    if dw is None and dm is None:  # dv = -dalpha g
        dv = tuple((da_k * g_k.unsqueeze(1)).neg_() for da_k, g_k in zip(da, g))
    elif dw is None:  # dv = dmu v - dalpha g
        dv = tuple((dm_k * v_k.unsqueeze(1)).addcmul_(da_k, g_k.unsqueeze(1), value=-1)
                   for dm_k, da_k, v_k, g_k in zip(dm, da, v, g))
    else:  # dv = -alpha H dw + mu dv + dmu v - dalpha g
        dv = tuple(h_k.mul_(-a_k.unsqueeze(1)).addcmul_(dv_k, m_k.unsqueeze(1))
                   for h_k, a_k, dv_k, m_k in zip(hdw, a, dv, m))
        if dm is not None:
            dv = tuple(d_k.addcmul_(dm_k, v_k.unsqueeze(1)) for d_k, dm_k, v_k in zip(dv, dm, v))
        dv = tuple(d_k.addcmul_(da_k, g_k.unsqueeze(1), value=-1) for d_k, da_k, g_k in zip(dv, da, g))
    v = tuple((m_k * v_k).addcmul_(a_k, g_k, value=-1) for m_k, a_k, v_k, g_k in zip(m, a, v, g))
    w = tuple(w_k + v_k for w_k, v_k in zip(w, v))
    if dw is None:
        dw = dv
    elif i == 1:  # dw still is the first step's dv: a new tensor
        dw = tuple(d_k + e_k for d_k, e_k in zip(dw, dv))
    else:
        dw = tuple(d_k.add_(e_k) for d_k, e_k in zip(dw, dv))
    return loss, w, v, dw, dv


def hypergradients(params, velocity, u, look_images, look_labels, eval_images, eval_labels):
    """Meta-objective ``(S,)`` (float64), raw hypergradient ``(S, 2)`` (float64) and lookahead losses ``(S, T)``.

    The meta-objective is the mean loss at ``w_T`` over the E evaluation
    batches ``(S, E, B, ...)`` (equal sizes: one batch of E*B examples).
    """
    w, dw, losses = lookahead(params, velocity, u, look_images, look_labels)
    S = eval_images.shape[0]
    x = eval_images.reshape((S, -1) + eval_images.shape[3:])
    meta, g, _ = mlp_grad_hvp_stacked(w, x, eval_labels.reshape(S, -1))
    P = dw[0].shape[1]
    grad = sum(torch.bmm(d.reshape(S, P, -1), e.reshape(S, -1, 1)).squeeze(-1) for d, e in zip(dw, g))
    return meta.double(), grad.double(), losses


@dataclass(frozen=True)
class MetaSettings:
    """Clip of the raw hypergradient and Adam's constants (those of a
    :class:`~shortbias_lib.engine.meta_optim.Adam`)."""

    clip: float = 10.0
    lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    @classmethod
    def of(cls, optimizer, clip=10.0):
        """The settings of an :class:`~shortbias_lib.engine.meta_optim.Adam` (a scalar rate) with ``clip``."""
        if not isinstance(optimizer, Adam) or np.ndim(optimizer.lr) != 0:
            raise ValueError("optimizer must be a meta_optim.Adam with a scalar lr")
        if not clip > 0:
            raise ValueError(f"clip must be > 0; got {clip!r}")
        return cls(float(clip), float(optimizer.lr), optimizer.beta1, optimizer.beta2, optimizer.eps)


def meta_step(params, velocity, u, adam_m, adam_s, adam_t, active, low, high,
              look_images, look_labels, eval_images, eval_labels, settings=MetaSettings()):
    """One meta step of S runs, a pure tensor function (no host synchronisation, no graph break).

    ``u``, ``adam_m``, ``adam_s``: (S, 2) float64; ``adam_t`` (S,) float64, Adam's step count
    per run; ``active`` (S,) bool; ``low``, ``high`` (2,) float64. Returns
    ``(u, adam_m, adam_s, adam_t, active, meta_loss, raw_grad, losses)``: a run that was
    active and whose lookahead losses, meta-objective and hypergradient are all
    finite (:func:`~shortbias_lib.engine.training.diverged`) takes the step
    ``u <- clip(Adam(u, clip(grad, -c, c)), low, high)``; any other run keeps ``u`` and its
    Adam state, and a diverged one becomes inactive.
    """
    meta, grad, losses = hypergradients(params, velocity, u, look_images, look_labels,
                                        eval_images, eval_labels)
    ok = ~(diverged(losses).any(1) | diverged(meta) | ~torch.isfinite(grad).all(1))
    active = active & ok
    s = settings
    clipped = grad.clamp(-s.clip, s.clip)
    t = adam_t + 1
    stepped, m, v = adam_update(u, clipped, adam_m, adam_s, t.unsqueeze(1), s.lr, s.beta1, s.beta2, s.eps)
    stepped = torch.minimum(torch.maximum(stepped, low), high)
    take = active.unsqueeze(1)
    return (torch.where(take, stepped, u), torch.where(take, m, adam_m), torch.where(take, v, adam_s),
            torch.where(active, t, adam_t), active, meta, grad, losses)


# ---------------------------------------------------------------- compiling, with an eager fallback

def compiled_meta_step(settings=MetaSettings(), mode=None, fullgraph=True, dynamic=False):
    """:func:`meta_step` with ``settings`` bound, under ``torch.compile`` where it works.

    Returns a callable with a ``compiled`` attribute (False and ``reason`` set when it fell
    back to eager: no ``torch.compile``, or compiling failed at the first call, e.g. no C++
    compiler or no Triton). ``mode="reduce-overhead"`` on a GPU captures the step in a CUDA
    graph; the outputs are then cloned after each call, since a graph's next replay reuses
    their memory.
    """
    return compiled(functools.partial(meta_step, settings=settings), mode, fullgraph, dynamic)


def compiled(eager, mode=None, fullgraph=True, dynamic=False):
    """``eager`` (a pure tensor function) under ``torch.compile`` where it works, else eager:
    the callable :func:`compiled_meta_step` describes (its ``compiled`` and ``reason``)."""
    compile_fn = getattr(torch, "compile", None)
    if compile_fn is None:
        return _Stepper(eager, None, "torch.compile is not available")
    try:
        fn = compile_fn(eager, mode=mode, fullgraph=fullgraph, dynamic=dynamic)
    except Exception as err:  # an old or partial build
        return _Stepper(eager, None, f"torch.compile failed: {err!r}")
    return _Stepper(eager, fn, None, clone=mode is not None and "overhead" in mode)


def meta_step_for(device, settings=MetaSettings()):
    """The meta step to use on ``device``: on CUDA :func:`compiled_meta_step` with
    ``mode="reduce-overhead"`` (CUDA graphs; eager where compiling fails), on the CPU the
    eager :func:`meta_step` (compiling does not pay there: ``bench/bench_batched_smd.py``)."""
    if torch.device(device).type == "cuda":
        return compiled_meta_step(settings, mode="reduce-overhead")
    return functools.partial(meta_step, settings=settings)


class _Stepper:
    def __init__(self, eager, compiled, reason, clone=False):
        self.eager, self.fn, self.reason, self.clone = eager, compiled, reason, clone
        self.compiled = compiled is not None
        self.tried = False

    def __call__(self, *args):
        if self.fn is None:
            return self.eager(*args)
        if self.clone:
            mark = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
            if mark is not None:
                mark()
        if self.tried:
            out = self.fn(*args)
        else:
            try:
                out = self.fn(*args)
            except Exception as err:  # compiling failed: run eagerly from now on
                self.fn, self.compiled, self.reason = None, False, f"compiling failed: {err!r}"
                return self.eager(*args)
            self.tried = True
        return _clone(out) if self.clone else out


def _clone(out):
    """The tensors of ``out`` (nested tuples of tensors, or ``None``) cloned."""
    if isinstance(out, tuple):
        return tuple(_clone(o) for o in out)
    return out if out is None else out.clone()


# ---------------------------------------------------------------- minibatches in the separate runs' order

def _index_rows(sampler, meta_steps, horizon, n_eval, deterministic):
    """``sampler``'s index draws for ``meta_steps`` meta steps, ``(meta_steps * draws, B)``:
    :func:`~shortbias_lib.engine.hypergrad.lookahead_batches` itself reads the sampler (its
    index draw in place of the batch), each meta step's lookahead rows then its evaluation rows."""
    batches = lookahead_batches(sampler.next_indices, horizon, n_eval, deterministic)
    return torch.stack([row for m in range(meta_steps) for part in batches(m) for row in part])


def draw_meta_batches(samplers, meta_steps, horizon, n_eval=None, deterministic=False, device=None):
    """Each run's minibatches for ``meta_steps`` meta steps, drawn from its own sampler now.

    ``samplers`` are :class:`~shortbias_lib.engine.batches.BatchSampler` (one per run, same
    data). Each is read by :func:`~shortbias_lib.engine.hypergrad.lookahead_batches`, the
    separate run's drawer, so the draws are the separate run's by construction (``horizon``
    lookahead batches then ``n_eval`` evaluation ones; deterministic: one batch, repeated).
    The two drawers differ in when they draw: the separate run lazily, during its lookahead;
    this one all meta steps' indices up front, so the device reads them without the host.
    Returns a :class:`MetaBatches`; its ``.at(m)`` gives meta step m's
    ``(look_images, look_labels, eval_images, eval_labels)`` with a leading S axis.
    """
    horizon = check_steps(horizon, "horizon")
    n_eval = horizon if n_eval is None else n_eval
    saved = [sampler.state_dict() for sampler in samplers]
    index = torch.stack([_index_rows(sampler, meta_steps, horizon, n_eval, deterministic)
                         for sampler in samplers]) if meta_steps else None
    images, labels = samplers[0].images, samplers[0].labels
    shared = all(s.images is images and s.labels is labels for s in samplers)
    return MetaBatches(samplers, saved, index, meta_steps, horizon, n_eval, deterministic, shared, device)


class MetaBatches:
    """Drawn indices ``(S, meta_steps * rows, B)`` and how meta step m reads them (see :func:`draw_meta_batches`)."""

    def __init__(self, samplers, saved, index, meta_steps, horizon, n_eval, deterministic, shared, device):
        self.samplers, self.saved, self.horizon, self.shared = samplers, saved, horizon, shared
        self.n_eval, self.deterministic = n_eval, deterministic
        self.per = index.shape[1] // meta_steps if meta_steps else 0  # rows per meta step
        device = samplers[0].labels.device if device is None else device
        self.index = None if index is None else index.to(device)

    def _gather(self, rows):
        if self.shared:
            sampler = self.samplers[0]
            return sampler.images[rows], sampler.labels[rows]
        parts = [(s.images[r], s.labels[r]) for s, r in zip(self.samplers, rows)]
        return torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts])

    def at(self, m):
        rows = self.index[:, m * self.per:(m + 1) * self.per]
        look_x, look_y = self._gather(rows[:, :self.horizon])
        eval_x, eval_y = self._gather(rows[:, self.horizon:])
        return look_x, look_y, eval_x, eval_y

    def rewind(self, stopped_meta, first_bad_step, lookahead_bad):
        """Leave each stopped run's sampler where its separate run leaves it, by replaying
        :func:`~shortbias_lib.engine.hypergrad.lookahead_batches` as
        :func:`~shortbias_lib.engine.hypergrad.smd` reads it: every batch of the meta steps
        before the diverged one; at that one, a stochastic lookahead stops at the check (every
        :data:`~shortbias_lib.engine.hypergrad.CHECK_EVERY` steps) after its first diverged loss,
        before the evaluation batches are drawn (a deterministic one drew its batch before).
        """
        for s, sampler in enumerate(self.samplers):
            m = int(stopped_meta[s])
            if m < 0:
                continue
            sampler.load_state_dict(self.saved[s])
            batches = lookahead_batches(sampler.next_indices, self.horizon, self.n_eval, self.deterministic)
            for j in range(m):
                _read(*batches(j))
            look, evaluation = batches(m)
            if lookahead_bad[s]:
                _read(itertools.islice(look, min(self.horizon, (int(first_bad_step[s]) // CHECK_EVERY + 1)
                                                 * CHECK_EVERY)))
            else:
                _read(look, evaluation)


def _read(*parts):
    """Draw every batch of ``parts`` (lists or lazy generators of them)."""
    for part in parts:
        for _ in part:
            pass


# ---------------------------------------------------------------- M meta steps of S runs

@dataclass
class BatchedAdamState:
    """Adam's moments (S, 2) and step counts (S,) of S runs, float64 on the device."""

    m: torch.Tensor
    s: torch.Tensor
    t: torch.Tensor

    @classmethod
    def zeros(cls, S, device=None):
        z = torch.zeros(S, 2, dtype=torch.float64, device=device)
        return cls(z, z.clone(), torch.zeros(S, dtype=torch.float64, device=device))

    def to_adam(self, run, settings):
        """Run ``run``'s state as a :class:`~shortbias_lib.engine.meta_optim.Adam`."""
        opt = Adam(settings.lr, settings.beta1, settings.beta2, settings.eps)
        opt.load_state_dict({"m": self.m[run].cpu().numpy(), "s": self.s[run].cpu().numpy(),
                             "t": int(self.t[run])})
        return opt


@dataclass
class BatchedSMDResult:
    """M meta steps of S runs, read from the device once.

    ``trajectory`` (S, M+1, 2): u before each meta step and after the last (a stopped run
    repeats its last u); ``meta_losses``, ``hypergrads`` (S, M[, 2]) and ``losses``
    (S, M, T), NaN from a run's stop on; ``stopped_meta`` (S,) the meta step at which a
    run stopped (-1: none); ``adam`` the Adam state after.
    """

    trajectory: np.ndarray
    meta_losses: np.ndarray
    hypergrads: np.ndarray
    losses: np.ndarray
    stopped_meta: np.ndarray
    adam: BatchedAdamState

    def u(self):
        return self.trajectory[:, -1]


def smd_batched(params, velocity, u, meta_steps, batches, *, adam=None, settings=MetaSettings(), step=None):
    """Algorithm 1 for S runs at once from stacked weights (fixed) and ``u`` (S, 2): M meta steps.

    ``batches`` is a :class:`MetaBatches` (from :func:`draw_meta_batches`; its
    samplers are rewound for runs that stop) or a function ``m -> (look_images,
    look_labels, eval_images, eval_labels)``. ``u`` is clipped to the bounds first, as
    :func:`~shortbias_lib.engine.hypergrad.smd` does. ``adam`` (a :class:`BatchedAdamState`,
    updated and returned) carries Adam across calls; ``step`` is :func:`meta_step` or a
    :func:`compiled_meta_step` (default: eager). The device is read once, at the end.
    """
    meta_steps = check_steps(meta_steps, "meta_steps", minimum=0)
    dtype, device = torch.float64, params[0].device
    S = params[0].shape[0]
    low, high = (torch.as_tensor(b, dtype=dtype, device=device) for b in log_space_bounds())
    u = torch.as_tensor(u, dtype=dtype, device=device).reshape(S, 2)
    u = torch.minimum(torch.maximum(u, low), high)
    adam = BatchedAdamState.zeros(S, device) if adam is None else adam
    if step is None:
        step = functools.partial(meta_step, settings=settings)
    active = torch.ones(S, dtype=torch.bool, device=device)
    path, metas, grads, looks, actives = [u], [], [], [], []
    get = batches.at if isinstance(batches, MetaBatches) else batches
    m_, s_, t_ = adam.m, adam.s, adam.t
    for m in range(meta_steps):
        u, m_, s_, t_, now, meta, grad, losses = step(params, velocity, u, m_, s_, t_, active, low, high, *get(m))
        path.append(u)
        metas.append(meta)
        grads.append(grad)
        looks.append(losses)
        actives.append(active & ~now)  # stopped at this meta step
        active = now
    adam.m, adam.s, adam.t = m_, s_, t_
    trajectory = torch.stack(path, 1).cpu().numpy()
    if not meta_steps:
        empty = np.zeros((S, 0))
        return BatchedSMDResult(trajectory, empty, np.zeros((S, 0, 2)), np.zeros((S, 0, 0)),
                                np.full(S, -1), adam)
    meta_losses = torch.stack(metas, 1).cpu().numpy()
    hypergrads = torch.stack(grads, 1).cpu().numpy()
    losses = torch.stack(looks, 1).double().cpu().numpy()
    stops = torch.stack(actives, 1).cpu().numpy()
    stopped = np.where(stops.any(1), stops.argmax(1), -1)
    for s in range(S):
        if stopped[s] >= 0:
            meta_losses[s, stopped[s]:] = np.nan
            hypergrads[s, stopped[s]:] = np.nan
    if isinstance(batches, MetaBatches) and (stopped >= 0).any():
        bad_steps = np.full(S, -1)
        look_bad = np.zeros(S, dtype=bool)
        for s in np.flatnonzero(stopped >= 0):
            bad = np.flatnonzero(diverged(losses[s, stopped[s]]))
            look_bad[s] = bad.size > 0
            bad_steps[s] = bad[0] if bad.size else -1
        batches.rewind(stopped, bad_steps, look_bad)
    for s in range(S):
        if stopped[s] >= 0:
            losses[s, stopped[s] + 1:] = np.nan
    return BatchedSMDResult(trajectory, meta_losses, hypergrads, losses, stopped, adam)


def stack_runs(states):
    """S :class:`~shortbias_lib.engine.training.TrainState` (or parameter tuples: zero velocity) stacked:
    ``(params, velocity)`` with a leading S axis."""
    params = [getattr(s, "params", s) for s in states]
    velocity = [getattr(s, "velocity", None) or tuple(torch.zeros_like(p) for p in q)
                for s, q in zip(states, params)]
    return (tuple(torch.stack(t) for t in zip(*params)), tuple(torch.stack(t) for t in zip(*velocity)))


"""Exact forward-mode hypergradients and stochastic meta-descent (Algorithm 1).

The hyperparameters (``alpha_t = alpha_0 / (1 + t/K)^beta`` and ``mu``) and their
learned coordinates ``u`` are :class:`~shortbias_lib.engine.hyperparams.Hyperparameters`.
Forward mode (:func:`hypergradient`) carries, for each coordinate ``u_j``, the tangents
``dw/du_j`` and ``dv/du_j`` through the T lookahead steps (Equation 9 for
plain SGD: ``u_t = u_{t-1} - g_t - alpha H_t u_{t-1}``), with one
Hessian-vector product per step (:mod:`shortbias_lib.engine.hvp`); memory does
not grow with T. The hypergradient of the meta-objective ``L(w_T)`` is then
``grad L(w_T) . dw_T/du_j`` (Equation 8). :func:`smd` is Algorithm 1: M
meta steps of Adam or momentum on ``u`` (:mod:`shortbias_lib.engine.meta_optim`), raw
hypergradients clipped to +-10, ``u`` projected onto the authors' bounds after each step.
Independent references (finite differences, reverse mode) are in
:mod:`shortbias_lib.engine.reference`, cost measurements in :mod:`shortbias_lib.engine.measure`.
"""

from array import array
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DivergenceError
from .hvp import GRAD_HVP, autograd_grad, autograd_grad_hvp
from .hyperparams import Hyperparameters
from .meta_optim import make_meta_optimizer
from .training import TrainState, check_convention, check_steps, diverged, init_state


# ---------------------------------------------------------------- lookahead with tangents

@dataclass
class Hypergradient:
    """Result of one lookahead: meta-loss L(w_T), dL/du, the state reached, per-step losses."""

    loss: float
    grad: np.ndarray
    state: TrainState
    losses: np.ndarray
    names: tuple


def check_batches(batches, name):
    if not isinstance(batches, (list, tuple)) or len(batches) < 1:
        raise ValueError(f"{name} must be a non-empty list of (images, labels) batches; "
                         f"the horizon is its length and must be >= 1")
    return list(batches)


# Losses of a lookahead stay on the device and are checked for NaN/inf every CHECK_EVERY
# steps (one host synchronisation per block, none per step); the first bad step is reported.
CHECK_EVERY = 50


def hypergradient(apply, state, hyper, batches, eval_batches, convention="paper", t0=None,
                  grad_hvp=None):
    """Forward-mode hypergradient of ``mean_k L(w_T; eval_batches[k])`` after ``T = len(batches)`` steps.

    ``batches`` and ``eval_batches`` are lists of ``(images, labels)`` or any
    iterables (e.g. generators drawing from a sampler, so that a lookahead of
    thousands of steps holds one batch at a time). Starts from ``state`` (a
    :class:`TrainState` or a parameter tuple, not modified) with zero
    tangents; the schedule is read at ``t0 + i`` (default ``t0 = state.step``).
    Each step's tangent recursion is :func:`paper_tangent_step` or
    :func:`heavy_ball_tangent_step` (Equation 9 is the case mu = 0).
    ``grad_hvp(params, x, y, directions) -> (loss, grads, hvps)`` (writing into
    ``out=(grads, hvps)`` when given) computes the gradient and the P
    Hessian-vector products in one pass; by default
    :func:`~shortbias_lib.engine.hvp.mlp_grad_hvp` for
    :func:`~shortbias_lib.engine.models.mlp_apply`, else double backward. A
    ``grad_hvp`` marked ``accumulates = True`` (ours are) is called with
    ``accumulate=(beta, alpha)`` and adds ``alpha H dw`` into ``beta dv``
    itself, saving two passes over the tangents. The per-step losses stay
    on the device and are checked every :data:`CHECK_EVERY` steps and at
    the end; a NaN or infinite loss raises :class:`DivergenceError` with
    the first bad step (never a result holding a NaN loss).
    """
    if isinstance(batches, (list, tuple)):
        batches = check_batches(batches, "batches")
    if isinstance(eval_batches, (list, tuple)):
        eval_batches = check_batches(eval_batches, "eval_batches")
    check_convention(convention)
    if not isinstance(state, TrainState):
        state = init_state(state)
    t0 = state.step if t0 is None else t0
    if grad_hvp is None:
        grad_hvp = GRAD_HVP.get(apply) or autograd_grad_hvp(apply)
    fused = getattr(grad_hvp, "accumulates", False)
    P = len(hyper.learn)
    buf = _TangentBuffers(state, P, fused)
    tangent_step = TANGENT_STEPS[convention]
    check = _LossCheck(t0, len(batches) if isinstance(batches, (list, tuple)) else None)
    for i, (images, labels) in enumerate(batches):
        alpha, mu, dalpha, dmu = hyper.at(t0 + i)
        if i == 0:  # tangents are zero: no Hessian-vector product needed
            loss, grads = autograd_grad(apply, buf.w_, images, labels)
            torch.cat([t.reshape(-1) for t in grads], out=buf.g)
        elif fused:  # dv <- mu dv + (-alpha | 1) H dw, inside grad_hvp
            loss = grad_hvp(buf.w_, images, labels, buf.dw_, out=buf.out,
                            accumulate=(mu, -alpha if convention == "paper" else 1.0))[0]
        else:
            loss = grad_hvp(buf.w_, images, labels, buf.dw_, out=buf.out)[0]
        check.add(loss)
        with torch.no_grad():
            tangent_step(buf, alpha, mu, dalpha, dmu, buf.hdw if i > 0 and not fused else None)
        if check.due():
            check.flush()
    check.flush()
    T = check.count
    if T < 1:
        raise ValueError("batches gave no batch: the horizon must be >= 1")
    meta, gsum, n = _meta_objective(apply, buf, eval_batches)
    if diverged(meta):
        raise DivergenceError(t0 + T, meta, "meta-objective")
    grad = sum(d.reshape(P, -1) @ s.reshape(-1) for d, s in zip(buf.dw_, buf.unflat(gsum))) / n
    final = TrainState(buf.unflat(buf.w.clone()), buf.unflat(buf.v.clone()), state.step + T)
    return Hypergradient(meta, grad.double().cpu().numpy(), final, check.values(), hyper.names)


class _TangentBuffers:
    """Weights, velocity, gradient and the P tangents dw, dv as flat buffers, with per-parameter views.

    Flat buffers make every elementwise update one kernel over all parameters; the
    tangents are parameter-major (parameter k's P directions are one contiguous
    ``(P,) + shape`` block), so one Hessian-vector product serves all directions.
    """

    def __init__(self, state, P, fused):
        self.shapes = [p.shape for p in state.params]
        self.sizes = [p.numel() for p in state.params]
        self.P = P
        self.w = torch.cat([p.detach().reshape(-1) for p in state.params])
        self.v = torch.cat([q.detach().reshape(-1) for q in state.velocity])
        self.g = torch.empty_like(self.w)
        self.dw = torch.zeros(P * self.w.numel(), dtype=self.w.dtype, device=self.w.device)
        self.dv = torch.zeros_like(self.dw)
        self.w_, self.v_, self.g_ = self.unflat(self.w), self.unflat(self.v), self.unflat(self.g)
        self.dw_, self.dv_ = self.blocks(self.dw), self.blocks(self.dv)
        self.dw_rows = [[t[j] for t in self.dw_] for j in range(P)]  # direction j, parameter by parameter
        self.dv_rows = [[t[j] for t in self.dv_] for j in range(P)]
        self.hdw = None if fused else torch.empty_like(self.dw)
        self.out = (self.g_, self.dv_ if fused else self.blocks(self.hdw))

    def unflat(self, flat):
        return tuple(t.view(s) for t, s in zip(flat.split(self.sizes), self.shapes))

    def blocks(self, flat):
        return tuple(t.view((self.P,) + s)
                     for t, s in zip(flat.split([self.P * k for k in self.sizes]), self.shapes))


def paper_tangent_step(buf, alpha, mu, dalpha, dmu, hdw=None):
    """One step of ``v' = mu v - alpha g``, ``w' = w + v'`` and its tangents::

        dv' = mu dv + dmu v - dalpha g - alpha H dw,   dw' = dw + dv'

    ``hdw`` is ``H dw`` when it still has to be added (``None``: already in ``dv``, or dw = 0).
    """
    if hdw is not None:
        buf.dv.mul_(mu)
        buf.dv.sub_(hdw, alpha=alpha)
    for j in range(buf.P):
        if dmu[j]:
            torch._foreach_add_(buf.dv_rows[j], buf.v_, alpha=dmu[j])
        if dalpha[j]:
            torch._foreach_add_(buf.dv_rows[j], buf.g_, alpha=-dalpha[j])
    buf.v.mul_(mu).sub_(buf.g, alpha=alpha)
    buf.w.add_(buf.v)
    buf.dw.add_(buf.dv)


def heavy_ball_tangent_step(buf, alpha, mu, dalpha, dmu, hdw=None):
    """One step of ``v' = mu v + g``, ``w' = w - alpha v'`` and its tangents::

        dv' = mu dv + dmu v + H dw,   dw' = dw - dalpha v' - alpha dv'

    ``hdw`` as in :func:`paper_tangent_step`.
    """
    if hdw is not None:
        buf.dv.mul_(mu)
        buf.dv.add_(hdw)
    for j in range(buf.P):
        if dmu[j]:
            torch._foreach_add_(buf.dv_rows[j], buf.v_, alpha=dmu[j])
    buf.v.mul_(mu).add_(buf.g)
    buf.dw.sub_(buf.dv, alpha=alpha)
    for j in range(buf.P):
        if dalpha[j]:
            torch._foreach_add_(buf.dw_rows[j], buf.v_, alpha=-dalpha[j])
    buf.w.sub_(buf.v, alpha=alpha)


TANGENT_STEPS = {"paper": paper_tangent_step, "heavy_ball": heavy_ball_tangent_step}


def _meta_objective(apply, buf, eval_batches):
    """Mean loss at ``w_T`` over ``eval_batches`` (one host synchronisation), summed gradient, batch count."""
    meta, n = None, 0
    gsum = torch.zeros_like(buf.w)
    for images, labels in eval_batches:
        loss, grads = autograd_grad(apply, buf.w_, images, labels)
        torch._foreach_add_(list(buf.unflat(gsum)), list(grads))
        meta = loss.double() if meta is None else meta + loss.double()
        n += 1
    if n < 1:
        raise ValueError("eval_batches gave no batch")
    return meta.item() / n, gsum, n


class _LossCheck:
    """Per-step losses kept on the device, copied to the host and checked block by block."""

    def __init__(self, t0, known=None):
        self.t0 = t0
        self.pending = []
        # 8 bytes a step: the only record that grows with T (preallocated when T is known).
        self.host = np.empty(known) if known else array("d")
        self.known = known
        self.count = 0

    def add(self, loss):
        self.pending.append(loss.detach().reshape(()))

    def due(self):
        return len(self.pending) >= CHECK_EVERY

    def flush(self):
        if not self.pending:
            return
        values = torch.stack(self.pending).double().cpu().numpy()
        start = self.count
        self.pending = []
        self.count += len(values)
        if self.known:
            self.host[start:self.count] = values
        else:
            self.host.extend(values.tolist())
        bad = np.flatnonzero(diverged(values))
        if bad.size:
            raise DivergenceError(self.t0 + start + int(bad[0]), float(values[bad[0]]), "lookahead loss")

    def values(self):
        if self.known:
            return self.host[:self.count]
        return np.frombuffer(self.host, dtype=np.float64).copy()


# ---------------------------------------------------------------- Algorithm 1

@dataclass
class SMDResult:
    """SMD trajectory: u before each meta step and at the end, meta-losses, raw hypergradients.

    ``lrs`` and ``momenta`` are alpha_0 and mu along ``trajectory``.
    """

    hyper: Hyperparameters
    names: tuple
    trajectory: np.ndarray
    meta_losses: np.ndarray
    hypergrads: np.ndarray
    optimizer: object = None
    diverged: bool = False
    diverged_meta_step: int = -1
    diverged_step: int = -1
    lrs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    momenta: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class SMDHistory:
    """An SMD path so far (lists): u before each meta step and after the last, meta-losses, raw hypergradients."""

    trajectory: list
    meta_losses: list = field(default_factory=list)
    hypergrads: list = field(default_factory=list)


ON_DIVERGENCE = ("stop", "step_back")


def lookahead_batches(sampler, horizon, n_eval=None, deterministic=False):
    """``batches`` for :func:`smd` drawn from ``sampler``: ``m -> (lookahead, evaluation)``.

    Stochastic lookahead draws ``horizon`` fresh batches, then ``n_eval``
    (default ``horizon``) more for the meta-objective, lazily (as the lookahead
    consumes them, so long horizons hold one batch); ``deterministic=True``
    draws one batch, repeats it ``horizon`` times and evaluates on it.
    """
    horizon = check_steps(horizon, "horizon")
    n_eval = horizon if n_eval is None else check_steps(n_eval, "n_eval")

    def batches(m):
        if deterministic:
            batch = sampler()
            return [batch] * horizon, [batch]
        return ((sampler() for _ in range(horizon)), (sampler() for _ in range(n_eval)))

    return batches


def smd(apply, state, hyper, horizon, meta_steps, batches, *, optimizer="adam", clip=10.0,
        convention="paper", on_divergence="stop", resume=None, callback=None):
    """Algorithm 1: meta steps ``0 .. meta_steps - 1`` of ``hyper`` by forward-mode hypergradients.

    Every meta step restarts the ``horizon``-step lookahead from the same
    ``state`` (weights fixed, as in the paper; the schedule is read from
    ``state.step`` on). ``batches(m) -> (lookahead_batches, eval_batches)``
    (lists or iterables) gives meta step ``m``'s minibatches
    (:func:`lookahead_batches` makes one from a sampler); a lookahead that is
    not ``horizon`` batches long is a ``ValueError``. Raw hypergradients are
    clipped to ``+-clip`` and ``u`` is kept within :meth:`Hyperparameters.bounds`.
    ``optimizer`` is ``"adam"``, ``"momentum"`` (meta learning rate 0.01) or an
    optimizer of :mod:`shortbias_lib.engine.meta_optim` (to choose its rate, or keep
    its state across calls, as online SMD does). A diverging lookahead, or a
    hypergradient that is not finite, either stops SMD (``on_divergence="stop"``;
    reported as ``diverged``, its meta step and step) or counts as a
    hypergradient of ``+clip`` on the learning rate and 0 on the others with
    a NaN meta-loss (``"step_back"``, the offline experiment's rule).
    ``resume`` (an :class:`SMDHistory` or an earlier :class:`SMDResult`)
    continues that path from meta step ``len(resume.meta_losses)``, with
    ``optimizer`` holding its state. ``callback(m, history)`` is called after
    each meta step with the :class:`SMDHistory` so far.
    """
    horizon = check_steps(horizon, "horizon")
    meta_steps = check_steps(meta_steps, "meta_steps", minimum=0)
    if not clip > 0:
        raise ValueError(f"clip must be > 0; got {clip!r}")
    if on_divergence not in ON_DIVERGENCE:
        raise ValueError(f"on_divergence must be one of {ON_DIVERGENCE}; got {on_divergence!r}")
    if on_divergence == "step_back" and "lr" not in hyper.learn:
        raise ValueError("on_divergence='step_back' needs the learning rate among the learned hyperparameters")
    if not isinstance(state, TrainState):
        state = init_state(state)
    if isinstance(optimizer, str):
        optimizer = make_meta_optimizer(optimizer)
    low, high = hyper.bounds()
    if resume is None:
        history = SMDHistory([np.clip(hyper.vector(), low, high)])
    else:
        history = SMDHistory([np.asarray(u, dtype=np.float64) for u in resume.trajectory],
                             list(resume.meta_losses), list(resume.hypergrads))
    step_back = np.array([clip if name == "lr" else 0.0 for name in hyper.learn])
    u = history.trajectory[-1].copy()
    stopped_meta, stopped_step = -1, -1
    for m in range(len(history.meta_losses), meta_steps):
        try:
            loss, grad = _meta_gradient(apply, state, hyper.from_vector(u), horizon, batches(m), convention)
        except DivergenceError as err:
            if on_divergence == "stop":
                stopped_meta, stopped_step = m, err.step
                break
            loss, grad = float("nan"), step_back
        history.meta_losses.append(loss)
        history.hypergrads.append(grad)
        u = np.clip(optimizer.step(u, np.clip(grad, -clip, clip)), low, high)
        history.trajectory.append(u.copy())
        if callback is not None:
            callback(m, history)
    points = [hyper.from_vector(x) for x in history.trajectory]
    return SMDResult(points[-1], hyper.names, np.asarray(history.trajectory), np.asarray(history.meta_losses),
                     np.asarray(history.hypergrads).reshape(-1, len(hyper.learn)), optimizer,
                     stopped_meta >= 0, stopped_meta, stopped_step,
                     np.array([h.lr for h in points]), np.array([h.momentum for h in points]))


def _meta_gradient(apply, state, hyper, horizon, batches, convention):
    """One lookahead's meta-loss and raw hypergradient; a non-finite one raises :class:`DivergenceError`."""
    lookahead, evaluation = batches
    if isinstance(lookahead, (list, tuple)) and len(lookahead) != horizon:
        raise ValueError(f"batches gave {len(lookahead)} lookahead batches; horizon is {horizon}")
    result = hypergradient(apply, state, hyper, lookahead, evaluation, convention)
    if len(result.losses) != horizon:
        raise ValueError(f"batches gave {len(result.losses)} lookahead batches; horizon is {horizon}")
    if not np.all(np.isfinite(result.grad)):  # finite losses, overflowed tangents
        raise DivergenceError(state.step + horizon, float("nan"), "hypergradient")
    return result.loss, result.grad

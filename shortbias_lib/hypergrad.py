"""Exact forward-mode hypergradients and stochastic meta-descent (Algorithm 1).

The hyperparameters (``alpha_t = alpha_0 / (1 + t/K)^beta`` and ``mu``) and their
learned coordinates ``u`` are :class:`~shortbias_lib.hyperparams.Hyperparameters`.
Forward mode (:func:`hypergradient`) carries, for each coordinate ``u_j``, the tangents
``dw/du_j`` and ``dv/du_j`` through the T lookahead steps (Equation 9 for
plain SGD: ``u_t = u_{t-1} - g_t - alpha H_t u_{t-1}``), with one
Hessian-vector product per step (:mod:`shortbias_lib.hvp`); memory does
not grow with T. The hypergradient of the meta-objective ``L(w_T)`` is then
``grad L(w_T) . dw_T/du_j`` (Equation 8). :func:`smd` is Algorithm 1: M
meta steps of Adam or momentum on ``u`` (:mod:`shortbias_lib.meta_optim`), raw
hypergradients clipped to +-10, ``u`` projected onto the authors' bounds after each step.
Independent references (finite differences, reverse mode) are in
:mod:`shortbias_lib.reference`, cost measurements in :mod:`shortbias_lib.measure`.
"""

from array import array
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import DivergenceError
from .hvp import GRAD_HVP, autograd_grad, autograd_grad_hvp
from .hyperparams import Hyperparameters
from .meta_optim import Adam, make_meta_optimizer  # noqa: F401  (Adam: imported from here by offline.py)
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
    tangents; the schedule is read at ``t0 + i``
    (default ``t0 = state.step``). Tangents recursion, ``"paper"`` convention
    (``v' = mu v - alpha g``, ``w' = w + v'``)::

        dv' = mu dv + dmu v - dalpha g - alpha H dw,   dw' = dw + dv'

    and ``"heavy_ball"`` (``v' = mu v + g``, ``w' = w - alpha v'``)::

        dv' = mu dv + dmu v + H dw,   dw' = dw - dalpha v' - alpha dv'

    (Equation 9 is the case mu = 0). ``grad_hvp(params, x, y, directions)
    -> (loss, grads, hvps)`` (writing into ``out=(grads, hvps)`` when given)
    computes the gradient and the P Hessian-vector products in one pass; by
    default :func:`~shortbias_lib.hvp.mlp_grad_hvp` for
    :func:`~shortbias_lib.models.mlp_apply`, else double backward. The P
    tangents of each parameter are one contiguous block of a flat buffer
    (parameter-major), so a product serves all directions at once; a
    ``grad_hvp`` marked ``accumulates = True`` (ours are) is called with
    ``accumulate=(beta, alpha)`` and adds ``alpha H dw`` into ``beta dv``
    itself, saving two passes over the tangents. The per-step losses stay
    on the device and are checked every :data:`CHECK_EVERY` steps and at
    the end (no host synchronisation per step); a NaN or infinite loss
    raises :class:`DivergenceError` with the first bad step (never a
    result holding a NaN loss).
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
    shapes = [p.shape for p in state.params]
    sizes = [p.numel() for p in state.params]
    # Flat buffers: every elementwise update is one kernel over all parameters.
    w = torch.cat([p.detach().reshape(-1) for p in state.params])
    v = torch.cat([q.detach().reshape(-1) for q in state.velocity])
    g = torch.empty_like(w)
    # Tangents, parameter-major: parameter k's P directions are one contiguous (P,) + shape block.
    dw = torch.zeros(P * w.numel(), dtype=w.dtype, device=w.device)
    dv = torch.zeros_like(dw)

    def unflat(flat):
        return tuple(t.view(s) for t, s in zip(flat.split(sizes), shapes))

    def blocks(flat):
        return tuple(t.view((P,) + s) for t, s in zip(flat.split([P * k for k in sizes]), shapes))

    w_, v_, g_ = unflat(w), unflat(v), unflat(g)
    dw_, dv_ = blocks(dw), blocks(dv)
    dw_rows = [[t[j] for t in dw_] for j in range(P)]  # direction j, parameter by parameter
    dv_rows = [[t[j] for t in dv_] for j in range(P)]
    hdw = None if fused else torch.empty_like(dw)
    out = (g_, dv_ if fused else blocks(hdw))
    check = _LossCheck(t0, len(batches) if isinstance(batches, (list, tuple)) else None)
    for i, (images, labels) in enumerate(batches):
        alpha, mu, dalpha, dmu = hyper.at(t0 + i)
        if i == 0:  # tangents are zero: no Hessian-vector product needed
            loss, grads = autograd_grad(apply, w_, images, labels)
            torch.cat([t.reshape(-1) for t in grads], out=g)
        elif fused:  # dv <- mu dv + (-alpha | 1) H dw, inside grad_hvp
            loss = grad_hvp(w_, images, labels, dw_, out=out,
                            accumulate=(mu, -alpha if convention == "paper" else 1.0))[0]
        else:
            loss = grad_hvp(w_, images, labels, dw_, out=out)[0]
        check.add(loss)
        with torch.no_grad():
            if i > 0 and not fused:
                dv.mul_(mu)
                if convention == "paper":
                    dv.sub_(hdw, alpha=alpha)
                else:
                    dv.add_(hdw)
            for j in range(P):
                if dmu[j]:
                    torch._foreach_add_(dv_rows[j], v_, alpha=dmu[j])
                if dalpha[j] and convention == "paper":
                    torch._foreach_add_(dv_rows[j], g_, alpha=-dalpha[j])
            if convention == "paper":
                v.mul_(mu).sub_(g, alpha=alpha)
                w.add_(v)
                dw.add_(dv)
            else:
                v.mul_(mu).add_(g)
                dw.sub_(dv, alpha=alpha)
                for j in range(P):
                    if dalpha[j]:
                        torch._foreach_add_(dw_rows[j], v_, alpha=-dalpha[j])
                w.sub_(v, alpha=alpha)
        if check.due():
            check.flush()
    check.flush()
    T = check.count
    if T < 1:
        raise ValueError("batches gave no batch: the horizon must be >= 1")
    meta, n = None, 0
    gsum = torch.zeros_like(w)
    for images, labels in eval_batches:
        loss, grads = autograd_grad(apply, w_, images, labels)
        torch._foreach_add_(list(unflat(gsum)), list(grads))
        meta = loss.double() if meta is None else meta + loss.double()
        n += 1
    if n < 1:
        raise ValueError("eval_batches gave no batch")
    meta = meta.item() / n  # the one synchronisation for the meta-objective
    if diverged(meta):
        raise DivergenceError(t0 + T, meta, "meta-objective")
    grad = sum(d.reshape(P, -1) @ s.reshape(-1) for d, s in zip(dw_, unflat(gsum))) / n
    final = TrainState(unflat(w.clone()), unflat(v.clone()), state.step + T)
    return Hypergradient(meta, grad.double().cpu().numpy(), final, check.values(), hyper.names)


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


def smd(apply, state, hyper, horizon, meta_steps, sampler=None, batch_fn=None,
        deterministic=False, n_eval=None, meta_optimizer="adam", meta_lr=1e-2,
        clip=10.0, convention="paper", project=True, t0=None, callback=None):
    """Algorithm 1: ``meta_steps`` meta-updates of ``hyper`` by forward-mode hypergradients.

    Every meta step restarts the ``horizon``-step lookahead from the same
    ``state`` (weights fixed, as in the paper). Batches come from
    ``batch_fn(m) -> (lookahead_batches, eval_batches)`` (lists or
    iterables), or from ``sampler``: stochastic lookahead draws ``horizon``
    fresh batches and then ``n_eval`` (default ``horizon``) more for the
    meta-objective;
    ``deterministic=True`` draws one batch, repeats it ``horizon`` times and
    evaluates on it. Raw hypergradients are clipped to ``+-clip`` and, with
    ``project``, ``u`` is kept within :meth:`Hyperparameters.bounds`.
    ``meta_optimizer`` is ``"adam"``, ``"momentum"`` or an optimizer object
    (to keep its state across calls, as online SMD does). The schedule is
    read at ``t0 + i`` in the lookahead (default ``t0 = state.step``; pass
    ``t0=0`` to start an inverse-time schedule at t = 0 after a warm start).
    A diverging lookahead, or a hypergradient that is not finite, stops SMD
    and is reported (``diverged``, its meta step and step); a ``batch_fn``
    whose lookahead is not ``horizon`` batches long is a ``ValueError``.
    """
    horizon = check_steps(horizon, "horizon")
    meta_steps = check_steps(meta_steps, "meta_steps", minimum=0)
    if not clip > 0:
        raise ValueError(f"clip must be > 0; got {clip!r}")
    if batch_fn is None:
        if sampler is None:
            raise ValueError("smd needs a sampler or a batch_fn")
        n_eval = horizon if n_eval is None else check_steps(n_eval, "n_eval")

        def batch_fn(m):
            if deterministic:
                batch = sampler()
                return [batch] * horizon, [batch]
            # Lazy: drawn as the lookahead consumes them, so long horizons hold one batch.
            return ((sampler() for _ in range(horizon)), (sampler() for _ in range(n_eval)))

    if not isinstance(state, TrainState):
        state = init_state(state)
    optimizer = (make_meta_optimizer(meta_optimizer, meta_lr) if isinstance(meta_optimizer, str)
                 else meta_optimizer)
    low, high = hyper.bounds()
    u = hyper.vector()
    if project:
        u = np.clip(u, low, high)
    trajectory, losses, grads = [u.copy()], [], []
    diverged_meta, diverged_step = -1, -1
    for m in range(meta_steps):
        current = hyper.from_vector(u)
        lookahead, evaluation = batch_fn(m)
        if isinstance(lookahead, (list, tuple)) and len(lookahead) != horizon:
            raise ValueError(f"batch_fn returned {len(lookahead)} lookahead batches; horizon is {horizon}")
        try:
            result = hypergradient(apply, state, current, lookahead, evaluation, convention, t0)
        except DivergenceError as err:
            diverged_meta, diverged_step = m, err.step
            break
        if len(result.losses) != horizon:
            raise ValueError(f"batch_fn gave {len(result.losses)} lookahead batches; horizon is {horizon}")
        if not np.all(np.isfinite(result.grad)):  # finite losses, overflowed tangents
            diverged_meta, diverged_step = m, (state.step if t0 is None else t0) + horizon
            break
        losses.append(result.loss)
        grads.append(result.grad)
        u = optimizer.step(u, np.clip(result.grad, -clip, clip))
        if project:
            u = np.clip(u, low, high)
        trajectory.append(u.copy())
        if callback is not None:
            callback(m, hyper.from_vector(u), result)
    final = hyper.from_vector(u)
    P = len(hyper.learn)
    points = [hyper.from_vector(x) for x in trajectory]
    return SMDResult(final, hyper.names, np.asarray(trajectory),
                     np.asarray(losses), np.asarray(grads).reshape(-1, P), optimizer,
                     diverged_meta >= 0, diverged_meta, diverged_step,
                     np.array([h.lr for h in points]), np.array([h.momentum for h in points]))

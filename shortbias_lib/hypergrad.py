"""Exact forward-mode hypergradients and stochastic meta-descent (Algorithm 1).

The hyperparameters of SGD with momentum, ``alpha_t = alpha_0 / (1 + t/K)^beta``
(``beta = 0``: a constant rate) and ``mu``, are described by
:class:`Hyperparameters`, which maps them to a vector ``u`` of the ones
being learned, in log space as the paper does (``log(alpha/(1-mu))``, the
log effective learning rate; ``log(1-mu)``; ``log beta``) or raw.

Forward mode carries, for each coordinate ``u_j``, the tangents
``dw/du_j`` and ``dv/du_j`` through the T lookahead steps (Equation 9 for
plain SGD: ``u_t = u_{t-1} - g_t - alpha H_t u_{t-1}``), with one
Hessian-vector product per step computed by double backward; memory does
not grow with T. The hypergradient of the meta-objective ``L(w_T)`` is then
``grad L(w_T) . dw_T/du_j`` (Equation 8). :func:`smd` is Algorithm 1: M
meta steps of Adam or momentum on ``u``, raw hypergradients clipped to
+-10, ``u`` projected onto the authors' bounds after each step.
"""

import math
from array import array
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import DivergenceError
from .models import loss_fn, mlp_apply
from .training import (TrainState, check_convention, check_momentum, diverged,
                       check_steps, init_state, momentum_step)

LEARNABLE = ("lr", "momentum", "beta")
SPACES = ("log", "raw")
# The authors' bounds (on the effective learning rate, 1 - mu and beta).
BOUNDS = {"lr": (1e-4, 10.0), "momentum": (1e-4, 1.0), "beta": (1e-4, 1e3)}
LOG_NAMES = {"lr": "log_eff_lr", "momentum": "log_one_minus_mu", "beta": "log_beta"}


# ---------------------------------------------------------------- hyperparameters

@dataclass(frozen=True)
class Hyperparameters:
    """SGD-momentum hyperparameters and which of them are learned, in which space.

    ``lr`` is alpha_0 (the raw learning rate at t = 0), ``momentum`` mu in
    [0, 1), ``beta`` the inverse-time decay exponent (0: constant rate) with
    time constant ``K``. ``learn`` lists the learned ones among
    ``"lr"``, ``"momentum"``, ``"beta"``. In ``space="log"`` their
    coordinates are ``log(alpha_0/(1-mu))``, ``log(1-mu)`` and ``log beta``
    (Section 3.3); in ``space="raw"`` they are ``alpha_0``, ``mu``, ``beta``.
    """

    lr: float
    momentum: float = 0.9
    beta: float = 0.0
    K: float = 5000.0
    learn: tuple = ("lr", "momentum")
    space: str = "log"

    def __post_init__(self):
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be finite and > 0; got {self.lr!r}")
        check_momentum(self.momentum)
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta must be finite and >= 0; got {self.beta!r}")
        if not self.K > 0:
            raise ValueError(f"K must be > 0; got {self.K!r}")
        learn = tuple(self.learn)
        if not learn or any(name not in LEARNABLE for name in learn) or len(set(learn)) != len(learn):
            raise ValueError(f"learn must be distinct names among {LEARNABLE}; got {self.learn!r}")
        object.__setattr__(self, "learn", learn)
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}; got {self.space!r}")
        if self.space == "log" and "beta" in learn and self.beta <= 0:
            raise ValueError("beta must be > 0 to be learned in log space")

    @property
    def effective_lr(self):
        """alpha_0 / (1 - mu)."""
        return self.lr / (1.0 - self.momentum)

    @property
    def names(self):
        """Names of the coordinates of :meth:`vector`."""
        return tuple(LOG_NAMES[n] if self.space == "log" else n for n in self.learn)

    def vector(self):
        """The learned coordinates ``u`` as a float64 array."""
        return np.array([self._coord(name) for name in self.learn], dtype=np.float64)

    def _coord(self, name):
        if self.space == "raw":
            return {"lr": self.lr, "momentum": self.momentum, "beta": self.beta}[name]
        return {"lr": math.log(self.effective_lr), "momentum": math.log1p(-self.momentum),
                "beta": math.log(self.beta) if self.beta > 0 else -math.inf}[name]

    def from_vector(self, u):
        """The hyperparameters whose learned coordinates are ``u`` (others unchanged)."""
        u = dict(zip(self.learn, np.asarray(u, dtype=np.float64).tolist()))
        lr, mu, beta = self.lr, self.momentum, self.beta
        if self.space == "raw":
            lr, mu, beta = u.get("lr", lr), u.get("momentum", mu), u.get("beta", beta)
        else:
            one_minus = math.exp(u["momentum"]) if "momentum" in u else 1.0 - mu
            mu = 1.0 - one_minus
            eff = math.exp(u["lr"]) if "lr" in u else self.effective_lr
            lr = eff * one_minus
            beta = math.exp(u["beta"]) if "beta" in u else beta
        return Hyperparameters(lr, mu, beta, self.K, self.learn, self.space)

    def bounds(self):
        """(low, high) arrays for ``u``: the authors' bounds in log space, validity in raw space."""
        if self.space == "log":
            lows = [math.log(BOUNDS[n][0]) for n in self.learn]
            highs = [math.log(BOUNDS[n][1]) for n in self.learn]
        else:
            table = {"lr": (1e-12, math.inf), "momentum": (0.0, 1.0 - 1e-12), "beta": (0.0, math.inf)}
            lows = [table[n][0] for n in self.learn]
            highs = [table[n][1] for n in self.learn]
        return np.array(lows), np.array(highs)

    def at(self, t):
        """``(alpha_t, mu, dalpha_t/du, dmu/du)`` at step ``t``: the inputs of the tangent recursion."""
        log_decay = math.log1p(t / self.K)
        alpha = self.lr * math.exp(-self.beta * log_decay)
        mu = self.momentum
        dalpha, dmu = [], []
        for name in self.learn:
            if self.space == "raw":
                da = {"lr": alpha / self.lr, "momentum": 0.0, "beta": -alpha * log_decay}[name]
                dm = 1.0 if name == "momentum" else 0.0
            else:
                da = {"lr": alpha, "momentum": alpha, "beta": -alpha * self.beta * log_decay}[name]
                dm = -(1.0 - mu) if name == "momentum" else 0.0
            dalpha.append(da)
            dmu.append(dm)
        return alpha, mu, dalpha, dmu

    def torch_at(self, u, t):
        """``(alpha_t, mu)`` as differentiable functions of a tensor ``u`` (for reverse-mode checks)."""
        values = dict(zip(self.learn, u))
        log_decay = math.log1p(t / self.K)
        if self.space == "raw":
            lr = values.get("lr", self.lr)
            mu = values.get("momentum", self.momentum)
            beta = values.get("beta", self.beta)
        else:
            one_minus = torch.exp(values["momentum"]) if "momentum" in values else 1.0 - self.momentum
            mu = 1.0 - one_minus
            eff = torch.exp(values["lr"]) if "lr" in values else self.effective_lr
            lr = eff * one_minus
            beta = torch.exp(values["beta"]) if "beta" in values else self.beta
        if isinstance(beta, torch.Tensor):
            decay = torch.exp(-beta * log_decay)
        else:
            decay = math.exp(-beta * log_decay)
        return lr * decay, mu


# ---------------------------------------------------------------- lookahead with tangents

@dataclass
class Hypergradient:
    """Result of one lookahead: meta-loss L(w_T), dL/du, the state reached, per-step losses."""

    loss: float
    grad: np.ndarray
    state: TrainState
    losses: np.ndarray
    names: tuple


def _check_batches(batches, name):
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
    default :func:`mlp_grad_hvp` for
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
        batches = _check_batches(batches, "batches")
    if isinstance(eval_batches, (list, tuple)):
        eval_batches = _check_batches(eval_batches, "eval_batches")
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
            loss, grads = _autograd_grad(apply, w_, images, labels)
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
        loss, grads = _autograd_grad(apply, w_, images, labels)
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


def _autograd_grad(apply, params, images, labels):
    params = tuple(p.detach().requires_grad_(True) for p in params)
    with torch.enable_grad():
        loss = loss_fn(apply, params, images, labels)
        grads = torch.autograd.grad(loss, params)
    return loss.detach(), grads


def _accumulate(targets, values, accumulate):
    """``targets <- beta targets + alpha values`` (``accumulate = (beta, alpha)``), or a copy."""
    if accumulate is None:
        for target, value in zip(targets, values):
            target.copy_(value)
        return
    beta, alpha = accumulate
    for target, value in zip(targets, values):
        if beta == 0:
            torch.mul(value, alpha, out=target)
        else:
            target.mul_(beta).add_(value, alpha=alpha)


def autograd_grad_hvp(apply):
    """Gradient and Hessian-vector products by double backward, for any model.

    With ``out=(grads, hvps)`` the results are written there; with also
    ``accumulate=(beta, alpha)``, ``hvps <- beta hvps + alpha H d``.
    """

    def grad_hvp(params, images, labels, directions, out=None, accumulate=None):
        params = tuple(p.detach().requires_grad_(True) for p in params)
        with torch.enable_grad():
            loss = loss_fn(apply, params, images, labels)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            if directions[0].shape[0] == 1:
                hvps = torch.autograd.grad(grads, params, grad_outputs=[d[0] for d in directions])
                hvps = tuple(h.unsqueeze(0) for h in hvps)
            else:
                hvps = torch.autograd.grad(grads, params, grad_outputs=directions,
                                           is_grads_batched=True)
        grads = tuple(g.detach() for g in grads)
        if out is not None:
            _accumulate(out[0], grads, None)
            _accumulate(out[1], hvps, accumulate)
            return loss.detach(), tuple(out[0]), tuple(out[1])
        if accumulate is not None:
            raise ValueError("accumulate needs out=(grads, hvps) to accumulate into")
        return loss.detach(), grads, hvps

    grad_hvp.accumulates = True
    return grad_hvp


def mlp_grad_hvp(params, images, labels, directions, out=None, accumulate=None):
    """Loss, gradient and P Hessian-vector products of the ReLU MLP's cross-entropy in one pass.

    Forward-over-reverse written out (Pearlmutter's R-operator): one forward
    and one backward pass for the value and the gradient, and the forward
    tangents ``R(z)`` and backward tangents ``R(delta)`` of all P directions
    together, reusing the ReLU masks (ReLU has zero curvature) and the
    softmax. ``directions[k]`` has shape (P,) + ``params[k].shape``. The
    tangents are kept as (N, P, width), so that every product of a layer
    serves all P directions at once, never a loop over directions: the
    directions' weights stacked as (P*out, in) give ``h V^T`` and
    ``R(delta)^T h`` as one product each, and ``R(h) W^T`` and
    ``R(delta) W`` are one product with N*P rows. The input has no tangent,
    so the first layer costs one (P times wider) product each way.
    ``out`` (optional) is ``(grads, hvps)``, tensors to write the results
    into (fastest when each ``hvps[k]`` is contiguous, as the
    parameter-major buffers of :func:`hypergradient` are); with also
    ``accumulate=(beta, alpha)``, ``hvps <- beta hvps + alpha H d`` (the
    products accumulate into them directly).
    """
    x = images.reshape(images.shape[0], -1)
    N = x.shape[0]
    L = len(params) // 2
    W, b = params[0::2], params[1::2]
    P = directions[0].shape[0]
    # Directions stacked: weights (P*out, in), biases (1, P*out); views when contiguous.
    V = [d.reshape(P * d.shape[1], d.shape[2]) for d in directions[0::2]]
    c = [d.reshape(1, -1) for d in directions[1::2]]
    # Forward: values and tangents R(z) of all directions, (N, P*width) = (N, P, width).
    hs, masks, Rhs = [x], [None], [None]
    z = torch.addmm(b[0], x, W[0].t())
    Rz = torch.addmm(c[0], x, V[0].t())
    for layer in range(1, L):
        h = torch.relu(z)
        mask = torch.sign(h).unsqueeze(1)  # 1 where z > 0, else 0 (one cheap kernel)
        Rh = Rz.view(N, P, -1) * mask
        hs.append(h)
        masks.append(mask)
        Rhs.append(Rh)
        z = torch.addmm(b[layer], h, W[layer].t())
        Rz = torch.addmm(c[layer], h, V[layer].t())                  # h V^T + c
        Rz.view(N * P, -1).addmm_(Rh.view(N * P, -1), W[layer].t())  # + R(h) W^T
    logp = torch.log_softmax(z, -1)
    loss = torch.nn.functional.nll_loss(logp, labels)
    prob = logp.exp()
    delta = prob / N
    delta.scatter_add_(1, labels[:, None], torch.full((N, 1), -1.0 / N, dtype=prob.dtype, device=prob.device))
    if out is None:
        if accumulate is not None:
            raise ValueError("accumulate needs out=(grads, hvps) to accumulate into")
        grads = [torch.empty_like(p) for p in params]
        hvps = [torch.empty((P,) + p.shape, dtype=p.dtype, device=p.device) for p in params]
    else:
        grads, hvps = out
    beta, alpha = (0.0, 1.0) if accumulate is None else accumulate
    deltas = [None] * L
    for layer in range(L - 1, -1, -1):
        deltas[layer] = delta
        torch.mm(delta.t(), hs[layer], out=grads[2 * layer])
        torch.sum(delta, 0, out=grads[2 * layer + 1])
        if layer > 0:
            delta = (delta @ W[layer]) * masks[layer].squeeze(1)
    # Backward tangents of the softmax cross-entropy: R(delta) = p (R(z) - <p, R(z)>) / N.
    p3 = prob.unsqueeze(1)
    Rz = Rz.view(N, P, -1)
    Rd = (Rz - (p3 * Rz).sum(-1, keepdim=True)).mul_(p3).div_(N)
    for layer in range(L - 1, -1, -1):
        target = hvps[2 * layer]
        rows, cols = target.shape[1:]
        # R(delta)^T h for all directions: (P*out, N) @ (N, in), into (or onto) the target.
        Rd_t = Rd.reshape(N, -1).t()
        if target.is_contiguous():
            flat = target.view(P * rows, cols)
            if beta == 0:
                torch.mm(Rd_t, hs[layer], out=flat)
                if alpha != 1:
                    flat.mul_(alpha)
            else:
                flat.addmm_(Rd_t, hs[layer], beta=beta, alpha=alpha)
        else:
            _accumulate([target], [(Rd_t @ hs[layer]).view(target.shape)], (beta, alpha))
        if layer > 0:
            # + delta^T R(h): (out, N) @ (N, P*in), seen as (P, out, in).
            cross = deltas[layer].t() @ Rhs[layer].view(N, -1)
            target.add_(cross.view(rows, P, cols).transpose(0, 1), alpha=alpha)
        _accumulate([hvps[2 * layer + 1]], [Rd.sum(0)], (beta, alpha))
        if layer > 0:
            # R(delta) below = (R(delta) W + delta V) * mask.
            below = (Rd.reshape(N * P, -1) @ W[layer]).view(N, P, -1)
            below += torch.matmul(deltas[layer], directions[2 * layer]).transpose(0, 1)
            Rd = below.mul_(masks[layer])
    return loss, tuple(grads), tuple(hvps)


mlp_grad_hvp.accumulates = True


GRAD_HVP = {mlp_apply: mlp_grad_hvp}


# ---------------------------------------------------------------- independent references

def meta_loss(apply, state, hyper, batches, eval_batches, convention="paper", t0=None):
    """The meta-objective alone (no tangents): for finite differences."""
    batches = _check_batches(batches, "batches")
    if not isinstance(state, TrainState):
        state = init_state(state)
    t0 = state.step if t0 is None else t0
    w, v = tuple(p.detach() for p in state.params), tuple(state.velocity)
    for i, (images, labels) in enumerate(batches):
        alpha, mu, _, _ = hyper.at(t0 + i)
        w = tuple(p.requires_grad_(True) for p in w)
        with torch.enable_grad():
            g = torch.autograd.grad(loss_fn(apply, w, images, labels), w)
        with torch.no_grad():
            w, v = momentum_step(tuple(p.detach() for p in w), v, g, alpha, mu, convention)
    with torch.no_grad():
        return sum(loss_fn(apply, w, x, y).item() for x, y in eval_batches) / len(eval_batches)


def finite_difference(apply, state, hyper, batches, eval_batches, convention="paper", eps=1e-5, t0=None):
    """Central finite differences of :func:`meta_loss` in the learned coordinates ``u``."""
    u = hyper.vector()
    out = np.zeros_like(u)
    for j in range(len(u)):
        step = np.zeros_like(u)
        step[j] = eps
        plus = meta_loss(apply, state, hyper.from_vector(u + step), batches, eval_batches, convention, t0)
        minus = meta_loss(apply, state, hyper.from_vector(u - step), batches, eval_batches, convention, t0)
        out[j] = (plus - minus) / (2 * eps)
    return out


def reverse_hypergradient(apply, state, hyper, batches, eval_batches, convention="paper", t0=None):
    """Reverse mode through the unrolled lookahead: keeps the whole graph (memory grows with T)."""
    batches = _check_batches(batches, "batches")
    if not isinstance(state, TrainState):
        state = init_state(state)
    t0 = state.step if t0 is None else t0
    u = torch.tensor(hyper.vector(), dtype=torch.float64, requires_grad=True)
    w = tuple(p.detach().requires_grad_(True) for p in state.params)
    v = tuple(state.velocity)
    with torch.enable_grad():
        for i, (images, labels) in enumerate(batches):
            alpha, mu = hyper.torch_at(u, t0 + i)
            g = torch.autograd.grad(loss_fn(apply, w, images, labels), w, create_graph=True)
            w, v = momentum_step(w, v, g, alpha, mu, convention)
        meta = sum(loss_fn(apply, w, x, y) for x, y in eval_batches) / len(eval_batches)
        (grad,) = torch.autograd.grad(meta, u)
    return grad.numpy()


def peak_rss_mib(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), peak resident memory in MiB above the level before the call)``.

    Linux only: frees unused heap (``malloc_trim``), resets the kernel's
    high-water mark (``/proc/self/clear_refs``) and reads ``VmHWM``
    afterwards; elsewhere the peak is NaN. Used to measure, not assert,
    that forward mode needs memory constant in T and reverse mode linear.
    """
    import ctypes
    import gc

    def read(key):
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024
        raise OSError(key)

    try:
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        base = read("VmRSS")
    except OSError:
        return fn(*args, **kwargs), float("nan")
    out = fn(*args, **kwargs)
    return out, read("VmHWM") - base


# ---------------------------------------------------------------- meta-optimizers

class Adam:
    """Adam on a small NumPy vector (Kingma & Ba 2015), minimizing."""

    def __init__(self, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8):
        if not lr > 0:
            raise ValueError(f"meta_lr must be > 0; got {lr!r}")
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = self.s = None
        self.t = 0

    def step(self, u, grad):
        if self.m is None:
            self.m, self.s = np.zeros_like(u), np.zeros_like(u)
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.s = self.beta2 * self.s + (1 - self.beta2) * grad ** 2
        m_hat = self.m / (1 - self.beta1 ** self.t)
        s_hat = self.s / (1 - self.beta2 ** self.t)
        return u - self.lr * m_hat / (np.sqrt(s_hat) + self.eps)

    def state_dict(self):
        """The moments and step count as arrays (empty moments before the first step)."""
        empty = np.zeros(0)
        return {"m": empty if self.m is None else np.array(self.m),
                "s": empty if self.s is None else np.array(self.s), "t": int(self.t)}

    def load_state_dict(self, state):
        """Continue from :meth:`state_dict`'s output."""
        self.t = int(state["t"])
        started = self.t > 0 and np.size(state["m"]) > 0
        self.m = np.array(state["m"], dtype=np.float64) if started else None
        self.s = np.array(state["s"], dtype=np.float64) if started else None


class Momentum:
    """Heavy-ball momentum on a small NumPy vector, minimizing."""

    def __init__(self, lr=1e-2, momentum=0.9):
        if not lr > 0:
            raise ValueError(f"meta_lr must be > 0; got {lr!r}")
        check_momentum(momentum, "meta_momentum")
        self.lr, self.momentum = lr, momentum
        self.velocity = None

    def step(self, u, grad):
        if self.velocity is None:
            self.velocity = np.zeros_like(u)
        self.velocity = self.momentum * self.velocity + grad
        return u - self.lr * self.velocity

    def state_dict(self):
        """The velocity as an array (empty before the first step)."""
        return {"velocity": np.zeros(0) if self.velocity is None else np.array(self.velocity)}

    def load_state_dict(self, state):
        """Continue from :meth:`state_dict`'s output."""
        velocity = np.asarray(state["velocity"], dtype=np.float64)
        self.velocity = velocity.copy() if velocity.size else None


META_OPTIMIZERS = {"adam": Adam, "momentum": Momentum}


def make_meta_optimizer(name="adam", lr=1e-2, **kwargs):
    """``"adam"`` or ``"momentum"`` meta-optimizer with meta learning rate ``lr``."""
    if name not in META_OPTIMIZERS:
        raise ValueError(f"meta_optimizer must be one of {', '.join(META_OPTIMIZERS)}; got {name!r}")
    return META_OPTIMIZERS[name](lr, **kwargs)


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


# ---------------------------------------------------------------- measurements for the book and bench

def compare_hypergradients(apply, state, hyper, batches, eval_batches, convention="paper", eps=1e-6):
    """Forward mode, central finite differences and reverse mode on one lookahead (use float64).

    Returns a dict with the three vectors and the largest relative differences
    of forward mode to each reference (relative to the largest reference entry).
    """
    forward = hypergradient(apply, state, hyper, batches, eval_batches, convention).grad
    fd = finite_difference(apply, state, hyper, batches, eval_batches, convention, eps)
    reverse = reverse_hypergradient(apply, state, hyper, batches, eval_batches, convention)

    def rel(a, b):
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))

    return {"forward": forward, "finite_difference": fd, "reverse": reverse,
            "rel_err_fd": rel(forward, fd), "rel_err_reverse": rel(forward, reverse)}


def memory_vs_horizon(apply, state, hyper, batches, eval_batches, horizons, convention="paper"):
    """Peak resident memory (MiB) of forward and reverse mode for each lookahead length T.

    Lookahead ``T`` cycles through ``batches``. Returns ``(forward, reverse)`` arrays.
    """
    forward, reverse = [], []
    for T in horizons:
        look = [batches[t % len(batches)] for t in range(T)]
        reverse.append(peak_rss_mib(reverse_hypergradient, apply, state, hyper, look,
                                    eval_batches, convention)[1])
        forward.append(peak_rss_mib(hypergradient, apply, state, hyper, look,
                                    eval_batches, convention)[1])
    return np.asarray(forward), np.asarray(reverse)


def step_costs(apply, state, batches, steps=20, repeats=3, learn_sets=(("lr",), ("lr", "momentum")),
               lr=0.1, momentum=0.9):
    """Seconds per step: plain training and hypergradient-carrying steps (best of interleaved repeats).

    Uses process CPU time on the CPU (less disturbed by other processes on a
    shared machine), wall time with a CUDA synchronisation on the GPU. Keys:
    ``"plain"``, one per learned set (e.g. ``"lr"``, ``"lr+momentum"``) and
    ``"lr, double backward"`` (the generic path, when ``apply`` has a fast path).
    """
    import time

    from .training import train

    device = state.params[0].device
    cuda = device.type == "cuda"
    clock = time.perf_counter if cuda else time.process_time
    look = [batches[t % len(batches)] for t in range(steps)]
    # Each run gets its own copy of the state, made outside the timing (train() updates
    # the state it is given in place).
    runs = {"plain": lambda s: train(apply, s, batches, steps, lr, momentum)}
    for learn in learn_sets:
        hyper = Hyperparameters(lr, momentum, learn=tuple(learn))
        runs["+".join(learn)] = (lambda h: lambda s: hypergradient(apply, s, h, look, batches[:1]))(hyper)
    if apply in GRAD_HVP:
        hyper = Hyperparameters(lr, momentum, learn=("lr",))
        runs["lr, double backward"] = lambda s: hypergradient(apply, s, hyper, look, batches[:1],
                                                              grad_hvp=autograd_grad_hvp(apply))
    best = {name: math.inf for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            fresh = state.clone()
            if cuda:
                torch.cuda.synchronize()
            start = clock()
            fn(fresh)
            if cuda:
                torch.cuda.synchronize()
            best[name] = min(best[name], (clock() - start) / steps)
    return best

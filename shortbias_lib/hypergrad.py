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
from .training import (TrainState, check_convention, check_momentum,
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


def hypergradient(apply, state, hyper, batches, eval_batches, convention="paper", t0=None,
                  grad_hvp=None):
    """Forward-mode hypergradient of ``mean_k L(w_T; eval_batches[k])`` after ``T = len(batches)`` steps.

    ``batches`` and ``eval_batches`` are lists of ``(images, labels)`` or any
    iterables (e.g. generators drawing from a sampler, so that a lookahead of
    thousands of steps holds one batch at a time). Starts from ``state`` (a :class:`TrainState` or a parameter tuple, not
    modified) with zero tangents; the schedule is read at ``t0 + i``
    (default ``t0 = state.step``). Tangents recursion, ``"paper"`` convention
    (``v' = mu v - alpha g``, ``w' = w + v'``)::

        dv' = mu dv + dmu v - dalpha g - alpha H dw,   dw' = dw + dv'

    and ``"heavy_ball"`` (``v' = mu v + g``, ``w' = w - alpha v'``)::

        dv' = mu dv + dmu v + H dw,   dw' = dw - dalpha v' - alpha dv'

    (Equation 9 is the case mu = 0). ``grad_hvp(params, x, y, directions)
    -> (loss, grads, hvps)`` (writing into ``out=(grads, hvps)`` when given) computes the gradient and the P Hessian-vector
    products in one pass; by default :func:`mlp_grad_hvp` for
    :func:`~shortbias_lib.models.mlp_apply`, else double backward. Raises
    :class:`DivergenceError` with the step if a loss is NaN or infinite.
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
    P = len(hyper.learn)
    shapes = [p.shape for p in state.params]
    sizes = [p.numel() for p in state.params]
    # Flat buffers: every elementwise update is one kernel over all parameters.
    w = torch.cat([p.detach().reshape(-1) for p in state.params])
    v = torch.cat([q.detach().reshape(-1) for q in state.velocity])
    dw = torch.zeros((P, w.numel()), dtype=w.dtype, device=w.device)
    dv = torch.zeros_like(dw)

    def unflat(flat):
        lead = flat.shape[:-1]
        return tuple(t.view(lead + s) for t, s in zip(flat.split(sizes, -1), shapes))

    def flat(parts, lead=()):
        return torch.cat([t.reshape(lead + (-1,)) for t in parts], -1)

    g = torch.empty_like(w)
    hdw_buffer = torch.empty_like(dw)
    out = (unflat(g), unflat(hdw_buffer))
    # 8 bytes a step: the only record that grows with T (preallocated when T is known).
    known = len(batches) if isinstance(batches, (list, tuple)) else None
    losses = np.empty(known) if known else array("d")
    i = -1
    for i, (images, labels) in enumerate(batches):
        alpha, mu, dalpha, dmu = hyper.at(t0 + i)
        if i == 0:  # tangents are zero: no Hessian-vector product needed
            loss, grads = _autograd_grad(apply, unflat(w), images, labels)
            torch.cat([t.reshape(-1) for t in grads], out=g)
            hdw = None
        else:
            loss = grad_hvp(unflat(w), images, labels, unflat(dw), out=out)[0]
            hdw = hdw_buffer
        value = loss.item()
        if known:
            losses[i] = value
        else:
            losses.append(value)
        if not math.isfinite(value):
            raise DivergenceError(t0 + i, value, "lookahead loss")
        with torch.no_grad():
            if convention == "paper":
                dv.mul_(mu)
                if hdw is not None:
                    dv.sub_(hdw, alpha=alpha)
                for j in range(P):
                    if dmu[j]:
                        dv[j].add_(v, alpha=dmu[j])
                    if dalpha[j]:
                        dv[j].sub_(g, alpha=dalpha[j])
                v.mul_(mu).sub_(g, alpha=alpha)
                w.add_(v)
                dw.add_(dv)
            else:
                dv.mul_(mu)
                if hdw is not None:
                    dv.add_(hdw)
                for j in range(P):
                    if dmu[j]:
                        dv[j].add_(v, alpha=dmu[j])
                v.mul_(mu).add_(g)
                dw.sub_(dv, alpha=alpha)
                for j in range(P):
                    if dalpha[j]:
                        dw[j].sub_(v, alpha=dalpha[j])
                w.sub_(v, alpha=alpha)
    T = i + 1
    if T < 1:
        raise ValueError("batches gave no batch: the horizon must be >= 1")
    meta, n = 0.0, 0
    gsum = torch.zeros_like(w)
    for images, labels in eval_batches:
        loss, g = _autograd_grad(apply, unflat(w), images, labels)
        gsum += flat(g)
        meta += loss.item()
        n += 1
    if n < 1:
        raise ValueError("eval_batches gave no batch")
    meta /= n
    if not math.isfinite(meta):
        raise DivergenceError(t0 + T, meta, "meta-objective")
    grad = (dw @ gsum / n).double().cpu().numpy()
    final = TrainState(unflat(w.clone()), unflat(v.clone()), state.step + T)
    return Hypergradient(meta, grad, final, (losses if known else np.frombuffer(losses, dtype=np.float64).copy()), hyper.names)


def _autograd_grad(apply, params, images, labels):
    params = tuple(p.detach().requires_grad_(True) for p in params)
    with torch.enable_grad():
        loss = loss_fn(apply, params, images, labels)
        grads = torch.autograd.grad(loss, params)
    return loss.detach(), grads


def autograd_grad_hvp(apply):
    """Gradient and Hessian-vector products by double backward, for any model."""

    def grad_hvp(params, images, labels, directions, out=None):
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
            for target, source in zip(out[0] + out[1], grads + tuple(hvps)):
                target.copy_(source)
        return loss.detach(), grads, hvps

    return grad_hvp


def mlp_grad_hvp(params, images, labels, directions, out=None):
    """Loss, gradient and P Hessian-vector products of the ReLU MLP's cross-entropy in one pass.

    Forward-over-reverse written out (Pearlmutter's R-operator): one forward
    and one backward pass for the value and the gradient, then for each
    direction the forward tangents ``R(z)`` and the backward tangents
    ``R(delta)``, reusing the ReLU masks (ReLU has zero curvature) and the
    softmax. ``directions`` has a leading axis of P directions; the input
    has no tangent, so the first layer costs one product each way. ``out``
    (optional) is ``(grads, hvps)``, tensors to write the results into.
    """
    x = images.reshape(images.shape[0], -1)
    N = x.shape[0]
    L = len(params) // 2
    W, b = params[0::2], params[1::2]
    P = directions[0].shape[0]
    hs, masks = [x], []
    z = torch.addmm(b[0], x, W[0].t())
    for layer in range(1, L):
        mask = z > 0
        h = z * mask
        masks.append(mask)
        hs.append(h)
        z = torch.addmm(b[layer], h, W[layer].t())
    logp = torch.log_softmax(z, -1)
    loss = -logp.gather(1, labels[:, None]).mean()
    prob = logp.exp()
    delta = prob.clone()
    delta[torch.arange(N, device=x.device), labels] -= 1
    delta /= N
    if out is None:
        grads = [torch.empty_like(p) for p in params]
        hvps = [torch.empty((P,) + p.shape, dtype=p.dtype, device=p.device) for p in params]
    else:
        grads, hvps = out
    deltas = [None] * L
    for layer in range(L - 1, -1, -1):
        deltas[layer] = delta
        torch.mm(delta.t(), hs[layer], out=grads[2 * layer])
        torch.sum(delta, 0, out=grads[2 * layer + 1])
        if layer > 0:
            delta = (delta @ W[layer]) * masks[layer - 1]
    for j in range(P):
        V = [d[j] for d in directions[0::2]]
        c = [d[j] for d in directions[1::2]]
        Rz = torch.addmm(c[0], x, V[0].t())
        Rhs = [None]
        for layer in range(1, L):
            Rh = Rz * masks[layer - 1]
            Rhs.append(Rh)
            Rz = torch.addmm(c[layer], Rh, W[layer].t()).addmm_(hs[layer], V[layer].t())
        Rd = prob * (Rz - (prob * Rz).sum(-1, keepdim=True)) / N
        for layer in range(L - 1, -1, -1):
            out = hvps[2 * layer][j]
            torch.mm(Rd.t(), hs[layer], out=out)
            if layer > 0:
                out.addmm_(deltas[layer].t(), Rhs[layer])
            torch.sum(Rd, 0, out=hvps[2 * layer + 1][j])
            if layer > 0:
                Rd = (Rd @ W[layer]).addmm_(deltas[layer], V[layer]) * masks[layer - 1]
    return loss, tuple(grads), tuple(hvps)


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
    A diverging lookahead stops SMD and is reported (``diverged``, its meta
    step and step).
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
    runs = {"plain": lambda: train(apply, state, batches, steps, lr, momentum)}
    for learn in learn_sets:
        hyper = Hyperparameters(lr, momentum, learn=tuple(learn))
        runs["+".join(learn)] = (lambda h: lambda: hypergradient(apply, state, h, look, batches[:1]))(hyper)
    if apply in GRAD_HVP:
        hyper = Hyperparameters(lr, momentum, learn=("lr",))
        runs["lr, double backward"] = lambda: hypergradient(apply, state, hyper, look, batches[:1],
                                                            grad_hvp=autograd_grad_hvp(apply))
    best = {name: math.inf for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            if cuda:
                torch.cuda.synchronize()
            start = clock()
            fn()
            if cuda:
                torch.cuda.synchronize()
            best[name] = min(best[name], (clock() - start) / steps)
    return best

"""SGD with momentum on a functional model: state, schedules, single and batched runs.

Two momentum conventions (they agree for a fixed learning rate, up to the
scale of the velocity, and differ once the learning rate changes over time):

* ``"paper"`` (the paper's text): ``v <- mu v - alpha g``, ``w <- w + v``;
* ``"heavy_ball"`` (the authors' code): ``v <- mu v + g``, ``w <- w - alpha v``.

Learning-rate schedules: :class:`Constant`, :class:`InverseTime`
(``alpha_t = alpha_0 / (1 + t/K)^beta``, Section 3.2) and
:class:`ExponentialDecay` (to a target value at a given step, Section 3.3).
:func:`train` runs one schedule; :func:`train_batched` runs S schedules at
once as one vmapped computation (for the GPU), marking diverged runs.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import DivergenceError
from .models import loss_fn

CONVENTIONS = ("paper", "heavy_ball")
# A loss above this counts as diverged, like NaN or infinity: the cross-entropy of a
# network that is still training is below ~1e3, and an exploded one can stay finite (1e216)
# for many steps before it overflows.
LOSS_LIMIT = 1e30


def diverged(values):
    """Elementwise: NaN, infinite, or above :data:`LOSS_LIMIT` (NumPy arrays or tensors)."""
    if isinstance(values, torch.Tensor):
        return ~torch.isfinite(values) | (values.abs() > LOSS_LIMIT)
    values = np.asarray(values, dtype=np.float64)
    return ~np.isfinite(values) | (np.abs(values) > LOSS_LIMIT)


# ---------------------------------------------------------------- validation

def check_convention(convention):
    """Return ``convention`` if it is ``"paper"`` or ``"heavy_ball"``, else raise ``ValueError``."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}; got {convention!r}")
    return convention


def check_lr(lr, name="lr"):
    """Learning rates must be finite and > 0 (scalars or tensors)."""
    values = torch.as_tensor(lr, dtype=torch.float64)
    if values.numel() == 0 or not bool(torch.all(torch.isfinite(values) & (values > 0))):
        raise ValueError(f"{name} must be finite and > 0; got {lr!r}")
    return lr


def check_momentum(momentum, name="momentum"):
    """Momentum must lie in [0, 1) (scalars or tensors)."""
    values = torch.as_tensor(momentum, dtype=torch.float64)
    if values.numel() == 0 or not bool(torch.all((values >= 0) & (values < 1))):
        raise ValueError(f"{name} must lie in [0, 1); got {momentum!r}")
    return momentum


def check_steps(steps, name="steps", minimum=1):
    """Step counts and horizons must be integers >= ``minimum``."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {steps!r}")
    return int(steps)


# ---------------------------------------------------------------- schedules

class Schedule:
    """A learning-rate schedule: ``lr(t)`` for step ``t`` (0-based).

    Parameters may be Python floats (one run) or 1-D tensors (S runs at once,
    :func:`train_batched`); ``lr(t)`` then returns a tensor of shape (S,).
    """

    def lr(self, t):
        raise NotImplementedError

    def __call__(self, t):
        return self.lr(t)

    @property
    def size(self):
        """Number of runs described (1 for scalar parameters)."""
        return 1


class Constant(Schedule):
    """``alpha_t = alpha``."""

    def __init__(self, lr):
        self.alpha = check_lr(lr)

    def lr(self, t):
        return self.alpha

    @property
    def size(self):
        return torch.as_tensor(self.alpha).numel()

    def __repr__(self):
        return f"Constant(lr={self.alpha!r})"


class InverseTime(Schedule):
    """Inverse-time decay ``alpha_t = alpha_0 / (1 + t/K)^beta`` (Section 3.2, K = 5000)."""

    def __init__(self, alpha0, beta, K=5000):
        self.alpha0 = check_lr(alpha0, "alpha0")
        values = torch.as_tensor(beta, dtype=torch.float64)
        if not bool(torch.all(torch.isfinite(values) & (values >= 0))):
            raise ValueError(f"beta must be finite and >= 0; got {beta!r}")
        if not K > 0:
            raise ValueError(f"K must be > 0; got {K!r}")
        self.beta, self.K = beta, K

    def lr(self, t):
        return self.alpha0 / (1.0 + t / self.K) ** self.beta

    @property
    def size(self):
        return max(torch.as_tensor(self.alpha0).numel(), torch.as_tensor(self.beta).numel())

    def __repr__(self):
        return f"InverseTime(alpha0={self.alpha0!r}, beta={self.beta!r}, K={self.K!r})"


class ExponentialDecay(Schedule):
    """``alpha_t = start * (target/start)^((t - t0)/steps)``, reaching ``target`` at ``t0 + steps``.

    Constant at ``start`` before ``t0`` and at ``target`` after. Section 3.3
    decays the *effective* learning rate to 1e-4: pass
    ``target = 1e-4 * (1 - mu)`` for the raw learning rate.
    """

    def __init__(self, start, target, steps, t0=0):
        self.start = check_lr(start, "start")
        self.target = check_lr(target, "target")
        self.steps = check_steps(steps)
        self.t0 = t0

    def lr(self, t):
        frac = min(max((t - self.t0) / self.steps, 0.0), 1.0)
        return self.start * (self.target / self.start) ** frac

    def __repr__(self):
        return f"ExponentialDecay(start={self.start!r}, target={self.target!r}, steps={self.steps}, t0={self.t0})"


def as_schedule(lr):
    """A :class:`Schedule` from a schedule or a plain number (a constant rate)."""
    return lr if isinstance(lr, Schedule) else Constant(lr)


# ---------------------------------------------------------------- state and one step

@dataclass
class TrainState:
    """Weights, velocity (same shapes) and the number of steps taken."""

    params: tuple
    velocity: tuple
    step: int = 0

    def clone(self):
        return TrainState(tuple(p.detach().clone() for p in self.params),
                          tuple(v.detach().clone() for v in self.velocity), self.step)


def init_state(params, velocity=None, step=0):
    """A :class:`TrainState` with zero velocity (or the given one), detached copies."""
    params = tuple(p.detach().clone() for p in params)
    if velocity is None:
        velocity = tuple(torch.zeros_like(p) for p in params)
    else:
        velocity = tuple(v.detach().clone() for v in velocity)
    return TrainState(params, velocity, step)


def momentum_step(params, velocity, grads, lr, momentum, convention="paper"):
    """One SGD-momentum step, out of place (differentiable in ``lr`` and ``momentum``).

    ``"paper"``: ``v' = mu v - lr g``, ``w' = w + v'``;
    ``"heavy_ball"``: ``v' = mu v + g``, ``w' = w - lr v'``. Returns ``(params', velocity')``.
    """
    if convention == "paper":
        new_v = tuple(momentum * v - lr * g for v, g in zip(velocity, grads))
        new_w = tuple(w + v for w, v in zip(params, new_v))
    elif convention == "heavy_ball":
        new_v = tuple(momentum * v + g for v, g in zip(velocity, grads))
        new_w = tuple(w - lr * v for w, v in zip(params, new_v))
    else:
        check_convention(convention)
    return new_w, new_v


def _step_inplace(params, velocity, grads, lr, momentum, convention):
    """In-place version of :func:`momentum_step` with foreach kernels (the fast path)."""
    torch._foreach_mul_(velocity, momentum)
    if convention == "paper":
        torch._foreach_add_(velocity, grads, alpha=-lr)
        torch._foreach_add_(params, velocity)
    else:
        torch._foreach_add_(velocity, grads)
        torch._foreach_add_(params, velocity, alpha=-lr)


# ---------------------------------------------------------------- batches

class BatchSampler:
    """Minibatches drawn without replacement, reshuffled every epoch, from one seeded generator.

    ``sampler()`` returns the next ``(images, labels)``; ``sampler.take(n)`` a list of n.
    Data are moved to ``device`` once.
    """

    def __init__(self, images, labels, batch_size=100, seed=0, device=None, dtype=None):
        if batch_size < 1 or batch_size > len(labels):
            raise ValueError(f"batch_size must lie in [1, {len(labels)}]; got {batch_size}")
        self.images = images.to(device=device, dtype=dtype or images.dtype)
        self.labels = labels.to(device=device)
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

    @classmethod
    def from_dataset(cls, dataset, batch_size=100, seed=0, device=None, dtype=None):
        return cls(dataset.images, dataset.labels, batch_size, seed, device, dtype)

    def __call__(self):
        if self._pos + self.batch_size > len(self._order):
            self._order = torch.randperm(len(self.labels), generator=self.generator)
            self._pos = 0
        index = self._order[self._pos:self._pos + self.batch_size].to(self.labels.device)
        self._pos += self.batch_size
        return self.images[index], self.labels[index]

    def take(self, n):
        return [self() for _ in range(n)]

    def state_dict(self):
        """Where the stream stands, as arrays: generator state, this epoch's order, position."""
        return {"rng": self.generator.get_state().numpy(), "order": self._order.cpu().numpy(),
                "pos": int(self._pos)}

    def load_state_dict(self, state):
        """Continue the stream from :meth:`state_dict`'s output (same data and batch size)."""
        self.generator.set_state(torch.from_numpy(np.array(state["rng"], dtype=np.uint8)))
        self._order = torch.from_numpy(np.array(state["order"], dtype=np.int64))
        self._pos = int(state["pos"])


def _next_batch(batches, t):
    """``batches`` may be a sampler (called with no argument), a list, or a function of t."""
    if isinstance(batches, (list, tuple)):
        return batches[t % len(batches)]
    if isinstance(batches, BatchSampler):
        return batches()
    return batches(t)


# ---------------------------------------------------------------- one run

@dataclass
class TrainResult:
    """Per-step minibatch losses (at w_t, before step t), evaluations, divergence."""

    state: TrainState
    losses: np.ndarray
    eval_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    eval_losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lrs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    diverged: bool = False
    diverged_step: int = -1


def train(apply, state, batches, steps, lr, momentum=0.9, convention="paper",
          eval_steps=(), eval_fn=None, check_every=None, raise_on_divergence=False):
    """Train ``steps`` SGD-momentum steps from ``state`` (a :class:`TrainState` or a parameter tuple).

    The schedule is evaluated at the global step ``state.step + i``, so a run
    can be continued in pieces. ``eval_fn(params) -> float`` is called at the
    global steps listed in ``eval_steps`` (after that many steps). A diverged loss
    (NaN, infinite or above :data:`LOSS_LIMIT`, :func:`diverged`) stops the run: the result says
    ``diverged`` and the step (or :class:`DivergenceError` is raised if ``raise_on_divergence``).
    """
    steps = check_steps(steps, minimum=0)
    check_convention(convention)
    check_momentum(momentum)
    schedule = as_schedule(lr)
    if not isinstance(state, TrainState):
        state = init_state(state)
    # Copies: the steps below are in place, and the caller's state must stay as it was.
    params = [p.detach().clone().requires_grad_(True) for p in state.params]
    velocity = [v.detach().clone() for v in state.velocity]
    start = state.step
    if check_every is None:
        check_every = 1 if params[0].device.type == "cpu" else 100
    eval_steps = sorted(int(s) for s in eval_steps)
    if eval_steps and eval_fn is None:
        raise ValueError("eval_fn is needed when eval_steps are given")
    eval_out, eval_done = [], []
    pending, losses, lrs = [], [], []
    diverged_step = -1

    def evaluate(t):
        while eval_steps and eval_steps[0] < t:
            eval_steps.pop(0)
        if eval_steps and eval_steps[0] == t:
            eval_steps.pop(0)
            eval_done.append(t)
            eval_out.append(float(eval_fn(tuple(p.detach() for p in params))))

    for i in range(steps):
        t = start + i
        evaluate(t)
        images, labels = _next_batch(batches, t)
        loss = loss_fn(apply, params, images, labels)
        grads = torch.autograd.grad(loss, params)
        alpha = float(schedule.lr(t))
        lrs.append(alpha)
        with torch.no_grad():
            _step_inplace(params, velocity, grads, alpha, momentum, convention)
        pending.append(loss.detach())
        if len(pending) >= check_every or i == steps - 1:
            values = torch.stack(pending).double().cpu().numpy()
            losses.extend(values.tolist())
            pending = []
            bad = np.flatnonzero(diverged(values))
            if bad.size:
                diverged_step = start + len(losses) - len(values) + int(bad[0])
                losses = losses[:len(losses) - len(values) + int(bad[0]) + 1]
                break
    else:
        evaluate(start + steps)
    taken = len(losses)
    final = TrainState(tuple(p.detach() for p in params), tuple(velocity), start + taken)
    result = TrainResult(final, np.asarray(losses), np.asarray(eval_done, dtype=np.int64),
                         np.asarray(eval_out), np.asarray(lrs[:taken]),
                         diverged_step >= 0, diverged_step)
    if result.diverged and raise_on_divergence:
        raise DivergenceError(diverged_step, losses[-1])
    return result


# ---------------------------------------------------------------- many runs at once

@dataclass
class BatchedResult:
    """S runs: losses (S, R) at ``record_steps`` (NaN from the step a run diverged on)."""

    record_steps: np.ndarray
    losses: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    params: tuple = None
    velocity: tuple = None


def stack_params(params, S):
    """Repeat a parameter tuple S times along a new leading axis."""
    return tuple(p.detach().unsqueeze(0).expand(S, *p.shape).clone() for p in params)


def batched_loss(apply, params, images, labels, chunk=10000):
    """Mean cross-entropy over ``(images, labels)`` for each of S stacked parameter sets: shape (S,)."""
    from torch.func import vmap

    def one(p, x, y):
        return torch.nn.functional.cross_entropy(apply(p, x), y, reduction="sum")

    run = vmap(one, in_dims=(0, None, None))
    total = None
    with torch.no_grad():
        for s in range(0, len(labels), chunk):
            part = run(tuple(params), images[s:s + chunk], labels[s:s + chunk])
            total = part if total is None else total + part
    return total / len(labels)


def train_batched(apply, params, schedule, steps, batches, momentum=0.9, convention="paper",
                  record_steps=None, velocity=None, eval_fn=None, per_run_batches=False,
                  stacked=False, chunk=None):
    """Train S runs, one per learning rate of ``schedule`` (tensors of shape (S,)), as one vmapped computation.

    ``params`` (and ``velocity``) are one shared starting point, broadcast to
    the S runs, or (``stacked=True``) tensors with a leading S axis.
    ``momentum`` is a number or a tensor of shape (S,). ``batches`` gives the
    minibatch of step t (a :class:`BatchSampler`, a list, or a function of t):
    shared by all runs, or with a leading S axis when ``per_run_batches``.
    The loss of each run is recorded at ``record_steps`` (after that many
    steps; default: ``[steps]``): the minibatch loss of that step, or
    ``eval_fn(stacked_params) -> (S_group,)`` if given (e.g.
    :func:`batched_loss` on fixed training batches). A run whose loss diverges
    (:func:`diverged`) is marked diverged at that step and its records from
    then on are NaN. ``chunk`` runs the S runs in groups of that size, one
    after the other at every step, to bound the memory of the vmapped
    gradient; all groups see the same batches. Nothing syncs the device
    inside the loop: the schedule's tensor parameters (e.g. ``alpha0`` and
    ``beta`` of :class:`InverseTime`) are moved to the device once, so each
    step's rates are computed there, with no host round trip.
    """
    from torch.func import grad_and_value, vmap

    steps = check_steps(steps)
    check_convention(convention)
    check_momentum(momentum)
    S = torch.as_tensor(schedule.lr(0)).numel()
    record = sorted(set(int(t) for t in (record_steps if record_steps is not None else [steps])))
    if record and (record[0] < 0 or record[-1] > steps):
        raise ValueError(f"record_steps must lie in [0, {steps}]; got {record_steps}")
    rec_index = {t: k for k, t in enumerate(record)}
    device = params[0].device
    groups = [(a, min(a + (chunk or S), S)) for a in range(0, S, chunk or S)]

    def one_loss(p, x, y):
        return loss_fn(apply, p, x, y)

    data_dim = 0 if per_run_batches else None
    grad_fn = vmap(grad_and_value(one_loss), in_dims=(0, data_dim, data_dim))
    loss_only = vmap(one_loss, in_dims=(0, data_dim, data_dim))

    state = []
    for a, b in groups:
        p = (tuple(q[a:b].detach().clone() for q in params) if stacked
             else stack_params(params, b - a))
        if velocity is None:
            v = tuple(torch.zeros_like(q) for q in p)
        else:
            v = (tuple(q[a:b].detach().clone() for q in velocity) if stacked
                 else stack_params(velocity, b - a))
        state.append((p, v))
    bad = torch.full((S,), -1, dtype=torch.long, device=device)
    rec = torch.full((S, len(record)), float("nan"), dtype=torch.float64, device=device)
    dtype = params[0].dtype
    mu_all = momentum.to(device=device, dtype=dtype) if isinstance(momentum, torch.Tensor) else momentum
    schedule = _schedule_on(schedule, device)
    for t in range(steps + 1):
        if t == steps and t not in rec_index:
            break
        x, y = _next_batch(batches, t)
        lr_all = schedule.lr(t)
        if isinstance(lr_all, torch.Tensor):  # already on the device: a no-op unless it is not
            lr_all = lr_all.to(device=device, dtype=dtype)
        for (a, b), (p, v) in zip(groups, state):
            xa, ya = (x[a:b], y[a:b]) if per_run_batches else (x, y)
            if t == steps:
                with torch.no_grad():
                    value = eval_fn(p) if eval_fn is not None else loss_only(p, xa, ya)
                _mark(bad[a:b], value, t)
                rec[a:b, rec_index[t]] = value.double()
                continue
            grads, value = grad_fn(p, xa, ya)
            _mark(bad[a:b], value, t)
            if t in rec_index:
                if eval_fn is not None:
                    with torch.no_grad():
                        value = eval_fn(p)
                    _mark(bad[a:b], value, t)
                rec[a:b, rec_index[t]] = value.double()
            with torch.no_grad():
                _batched_step(p, v, grads, _slice(lr_all, a, b), _slice(mu_all, a, b), convention)
    steps_t = torch.as_tensor(record, device=device)
    rec[(bad[:, None] >= 0) & (steps_t[None, :] >= bad[:, None])] = float("nan")
    final_p = tuple(torch.cat(parts) for parts in zip(*[p for p, _ in state]))
    final_v = tuple(torch.cat(parts) for parts in zip(*[v for _, v in state]))
    bad = bad.cpu()
    return BatchedResult(np.asarray(record), rec.cpu().numpy(), (bad >= 0).numpy(),
                         bad.numpy(), final_p, final_v)


def _schedule_on(schedule, device):
    """A shallow copy of ``schedule`` whose tensor attributes live on ``device`` (moved once,
    so that ``lr(t)`` runs there); the schedule itself if none has to move."""
    import copy

    try:
        attributes = vars(schedule)
    except TypeError:  # no __dict__: leave it as it is
        return schedule
    moving = {name: value for name, value in attributes.items()
              if isinstance(value, torch.Tensor) and value.device != torch.device(device)}
    if not moving:
        return schedule
    moved = copy.copy(schedule)
    for name, value in moving.items():
        setattr(moved, name, value.to(device))
    return moved


def _slice(value, a, b):
    if isinstance(value, torch.Tensor) and value.dim() > 0:
        return value[a:b]
    return value


def _mark(bad, value, t):
    newly = diverged(value) & (bad < 0)
    bad.masked_fill_(newly, t)


def _batched_step(params, velocity, grads, lr, mu, convention):
    for w, v, g in zip(params, velocity, grads):
        shape = (-1,) + (1,) * (w.dim() - 1)
        lr_b = lr.to(w.dtype).view(shape) if isinstance(lr, torch.Tensor) else lr
        mu_b = mu.to(w.dtype).view(shape) if isinstance(mu, torch.Tensor) else mu
        v.mul_(mu_b)
        if convention == "paper":
            v.sub_(lr_b * g)
            w.add_(v)
        else:
            v.add_(g)
            w.sub_(lr_b * v)

"""SGD with momentum on a functional model: the update, the state, single and batched runs.

Two momentum conventions (they agree for a fixed learning rate, up to the
scale of the velocity, and differ once the learning rate changes over time):

* ``"paper"`` (the paper's text): ``v <- mu v - alpha g``, ``w <- w + v``;
* ``"heavy_ball"`` (the authors' code): ``v <- mu v + g``, ``w <- w - alpha v``.

:func:`momentum_step` is the update (both conventions). :func:`train` runs one
learning-rate schedule (:mod:`shortbias_lib.engine.schedules`); :func:`train_batched`
runs S schedules at once as one vmapped computation (for the GPU), marking
diverged runs. Minibatches come from :mod:`shortbias_lib.engine.batches`.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from .batches import BatchSampler
from ..errors import DivergenceError
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


def _numbers(value, name, allowed):
    """``value`` as a float64 tensor, or ``ValueError`` naming ``name`` and the ``allowed``
    range if it is not numbers (a string, ``None``): never an error from inside torch."""
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be {allowed}; got {_short(value)}") from None


def _short(value):
    """One line for an error message, whatever ``value`` is (a tensor's repr spans lines)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def check_lr(lr, name="lr"):
    """Learning rates must be finite and > 0 (numbers, arrays or tensors)."""
    values = _numbers(lr, name, "finite and > 0")
    if values.numel() == 0 or not bool(torch.all(torch.isfinite(values) & (values > 0))):
        raise ValueError(f"{name} must be finite and > 0; got {_short(lr)}")
    return lr


def check_momentum(momentum, name="momentum"):
    """Momentum must lie in [0, 1) (numbers, arrays or tensors)."""
    values = _numbers(momentum, name, "in [0, 1)")
    if values.numel() == 0 or not bool(torch.all((values >= 0) & (values < 1))):
        raise ValueError(f"{name} must lie in [0, 1); got {_short(momentum)}")
    return momentum


def check_steps(steps, name="steps", minimum=1):
    """Step counts and horizons must be integers >= ``minimum``."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {steps!r}")
    return int(steps)


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


def state_arrays(state, params_key, velocity_key):
    """A state's weights and velocity as result-file arrays ``{params_key}{i}`` and
    ``{velocity_key}{i}`` (NumPy, on the CPU); :func:`state_from_arrays` reads them back."""
    arrays = {f"{params_key}{i}": p.detach().cpu().numpy() for i, p in enumerate(state.params)}
    arrays.update({f"{velocity_key}{i}": v.detach().cpu().numpy() for i, v in enumerate(state.velocity)})
    return arrays


def state_from_arrays(arrays, params_key, velocity_key, step=0, device=None, dtype=None):
    """The :class:`TrainState` that :func:`state_arrays` stored, at ``step``: copies on ``device``,
    in ``dtype`` (else the arrays' own)."""
    n = 0
    while f"{params_key}{n}" in arrays:
        n += 1

    def tensors(key):
        return tuple(torch.tensor(arrays[f"{key}{i}"], device=device, dtype=dtype) for i in range(n))
    return TrainState(tensors(params_key), tensors(velocity_key), step)


def momentum_step(params, velocity, grads, lr, momentum, convention="paper", *, inplace=False):
    """One SGD-momentum step in either convention; every plain (non-tangent) update calls it.

    ``"paper"``: ``v' = mu v - lr g``, ``w' = w + v'``;
    ``"heavy_ball"``: ``v' = mu v + g``, ``w' = w - lr v'``. Returns ``(params', velocity')``.
    ``lr`` and ``momentum`` are numbers, 0-dim tensors, or tensors of shape (S,)
    for S stacked runs (one per index of each parameter's leading axis). Out of
    place by default, differentiable in ``lr`` and ``momentum``. ``inplace=True``
    (numbers only, no graph: :func:`train`'s fast path) updates the given lists
    with foreach kernels, which fuse ``lr * g`` into the addition: its rounding
    differs from the out-of-place form, so each caller keeps the form it has.
    """
    check_convention(convention)
    if inplace:
        torch._foreach_mul_(velocity, momentum)
        if convention == "paper":
            torch._foreach_add_(velocity, grads, alpha=-lr)
            torch._foreach_add_(params, velocity)
        else:
            torch._foreach_add_(velocity, grads)
            torch._foreach_add_(params, velocity, alpha=-lr)
        return params, velocity
    lrs = [_per_run(lr, w) for w in params]
    mus = [_per_run(momentum, w) for w in params]
    if convention == "paper":
        new_v = tuple(mu * v - a * g for v, g, a, mu in zip(velocity, grads, lrs, mus))
        new_w = tuple(w + v for w, v in zip(params, new_v))
    else:
        new_v = tuple(mu * v + g for v, g, mu in zip(velocity, grads, mus))
        new_w = tuple(w - a * v for w, v, a in zip(params, new_v, lrs))
    return new_w, new_v


def _per_run(value, like):
    """``value`` as is, or a tensor of shape (S,) cast to ``like``'s dtype and shaped to
    broadcast over its leading axis (one value per stacked run)."""
    if isinstance(value, torch.Tensor) and value.dim() > 0:
        return value.to(like.dtype).view((-1,) + (1,) * (like.dim() - 1))
    return value


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

    ``lr`` is a number or a schedule ``lr(t)`` (:mod:`shortbias_lib.engine.schedules`), evaluated
    at the global step ``state.step + i``, so a run can be continued in pieces.
    ``eval_fn(params) -> float`` is called at the global steps listed in
    ``eval_steps`` (after that many steps). A diverged loss (NaN, infinite or
    above :data:`LOSS_LIMIT`, :func:`diverged`) stops the run: the result says ``diverged``
    and the step (or :class:`DivergenceError` is raised if ``raise_on_divergence``).
    """
    steps = check_steps(steps, minimum=0)
    check_convention(convention)
    check_momentum(momentum)
    if not callable(lr):
        check_lr(lr)
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
        alpha = float(lr(t) if callable(lr) else lr)
        lrs.append(alpha)
        with torch.no_grad():
            momentum_step(params, velocity, grads, alpha, momentum, convention, inplace=True)
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


def train_batched(apply, start, schedule, steps, batches, momentum=0.9, convention="paper",
                  record_steps=None, eval_fn=None, per_run_batches=False, stacked=False, chunk=None):
    """Train S runs, one per learning rate of ``schedule`` (tensors of shape (S,)), as one vmapped computation.

    ``start`` is a parameter tuple (zero velocity) or a :class:`TrainState`:
    one shared starting point, broadcast to the S runs, or (``stacked=True``)
    tensors with a leading S axis. ``momentum`` is a number or a tensor of shape (S,).
    ``batches`` gives the minibatch of step t (a :class:`~shortbias_lib.engine.batches.BatchSampler`,
    a list, or a function of t): shared by all runs, or with a leading S axis
    when ``per_run_batches``. The loss of each run is recorded at
    ``record_steps`` (after that many steps; default: ``[steps]``): the
    minibatch loss of that step, or ``eval_fn(stacked_params) -> (S_group,)``
    if given (e.g. :func:`~shortbias_lib.engine.models.batched_loss` on fixed
    training batches). A run whose loss diverges (:func:`diverged`) is marked
    diverged at that step and its records from then on are NaN. ``chunk`` runs
    the S runs in groups of that size, one after the other at every step, to
    bound the memory of the vmapped gradient; all groups see the same batches.
    Nothing syncs the device inside the loop: the schedule's tensor parameters
    are moved to the device once, so each step's rates are computed there.
    """
    from torch.func import grad_and_value, vmap

    steps = check_steps(steps)
    check_convention(convention)
    check_momentum(momentum)
    S = torch.as_tensor(schedule.lr(0)).numel()
    record = _record_steps(record_steps, steps)
    rec_index = {t: k for k, t in enumerate(record)}
    groups = [(a, min(a + (chunk or S), S)) for a in range(0, S, chunk or S)]
    state = _group_states(start, groups, stacked)
    device, dtype = state[0][0][0].device, state[0][0][0].dtype

    def one_loss(p, x, y):
        return loss_fn(apply, p, x, y)

    data_dim = 0 if per_run_batches else None
    grad_fn = vmap(grad_and_value(one_loss), in_dims=(0, data_dim, data_dim))
    loss_only = vmap(one_loss, in_dims=(0, data_dim, data_dim))
    bad = torch.full((S,), -1, dtype=torch.long, device=device)
    rec = torch.full((S, len(record)), float("nan"), dtype=torch.float64, device=device)
    mu_all = momentum.to(device=device, dtype=dtype) if isinstance(momentum, torch.Tensor) else momentum
    schedule = _schedule_on(schedule, device)
    for t in range(steps + 1):
        if t == steps and t not in rec_index:
            break
        x, y = _next_batch(batches, t)
        lr_all = schedule.lr(t)
        if isinstance(lr_all, torch.Tensor):  # already on the device: a no-op unless it is not
            lr_all = lr_all.to(device=device, dtype=dtype)
        for k, ((a, b), (p, v)) in enumerate(zip(groups, state)):
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
                state[k] = momentum_step(p, v, grads, _slice(lr_all, a, b), _slice(mu_all, a, b), convention)
    steps_t = torch.as_tensor(record, device=device)
    rec[(bad[:, None] >= 0) & (steps_t[None, :] >= bad[:, None])] = float("nan")
    final_p = tuple(torch.cat(parts) for parts in zip(*[p for p, _ in state]))
    final_v = tuple(torch.cat(parts) for parts in zip(*[v for _, v in state]))
    bad = bad.cpu()
    return BatchedResult(np.asarray(record), rec.cpu().numpy(), (bad >= 0).numpy(),
                         bad.numpy(), final_p, final_v)


def _record_steps(record_steps, steps):
    """The sorted distinct steps to record (default ``[steps]``), checked to lie in [0, steps]."""
    record = sorted(set(int(t) for t in (record_steps if record_steps is not None else [steps])))
    if record and (record[0] < 0 or record[-1] > steps):
        raise ValueError(f"record_steps must lie in [0, {steps}]; got {record_steps}")
    return record


def _group_states(start, groups, stacked):
    """``(params, velocity)`` of each group ``(a, b)`` of runs: rows a..b-1 of stacked tensors,
    or the shared start repeated; zero velocity when ``start`` is a parameter tuple."""
    params, velocity = (start.params, start.velocity) if isinstance(start, TrainState) else (start, None)
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
    return state


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

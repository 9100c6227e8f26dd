"""Learning-rate schedules: ``schedule(t)`` is the rate of step ``t`` (0-based).

Each schedule is a small class whose parameters may be Python floats (one run) or
1-D tensors (S runs at once, :func:`~shortbias_lib.engine.training.train_batched`);
``schedule(t)`` then returns a tensor of shape (S,). :class:`Constant`,
:class:`InverseTime` (``alpha_t = alpha_0 / (1 + t/K)^beta``, Section 3.2) and
:class:`ExponentialDecay` (to a target value at a given step, Section 3.3).
"""

import torch

from .training import check_lr, check_steps


class Schedule:
    """A learning-rate schedule: ``lr(t)`` (or ``schedule(t)``) for step ``t`` (0-based)."""

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


"""Meta-optimizers on the small vector ``u`` of learned hyperparameters (Algorithm 1's update).

:class:`Adam` and :class:`Momentum` on NumPy vectors, with their state as arrays
(``state_dict`` / ``load_state_dict``); :func:`make_meta_optimizer` picks one by name.
:func:`adam_update` is Adam's arithmetic, shared by :class:`Adam` and the batched runs'
on-device Adam (:func:`shortbias_lib.engine.batched_smd.meta_step`).
"""

import numpy as np
import torch

from .training import check_momentum


def adam_update(u, grad, m, s, t, lr, beta1, beta2, eps):
    """One Adam step (Kingma & Ba 2015), minimizing: ``(u, m, s)`` after the gradient ``grad``
    at step count ``t`` (1 at the first step), from the moments ``m``, ``s`` before it.

    A pure function of NumPy arrays, or of tensors (``t`` then a tensor broadcast against ``u``,
    so S runs with their own step counts go in one call, under ``torch.compile`` too): the one
    home of the arithmetic, so that the batched runs equal the separate ones to rounding.
    """
    sqrt = torch.sqrt if isinstance(s, torch.Tensor) else np.sqrt
    m = beta1 * m + (1 - beta1) * grad
    s = beta2 * s + (1 - beta2) * grad ** 2
    m_hat = m / (1 - beta1 ** t)
    s_hat = s / (1 - beta2 ** t)
    return u - lr * m_hat / (sqrt(s_hat) + eps), m, s


def rate_at(lr, step):
    """The meta learning rate of (0-based) meta step ``step``: ``lr`` itself, or ``lr(step)``
    for a schedule (:mod:`shortbias_lib.engine.schedules`) of the meta step."""
    return lr(step) if callable(lr) else lr


class Adam:
    """Adam on a small NumPy vector (Kingma & Ba 2015), minimizing. ``lr`` is a number, an
    array broadcast against ``u`` (e.g. one rate per schedule of a batch of fits), or a
    schedule of :mod:`shortbias_lib.engine.schedules` giving the rate of step ``t - 1`` (0-based,
    so a resumed optimizer continues its schedule; annealing makes noisy steps converge)."""

    def __init__(self, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8):
        if not callable(lr) and not np.all(np.asarray(lr, dtype=np.float64) > 0):
            raise ValueError(f"meta_lr must be > 0; got {lr!r}")
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = self.s = None
        self.t = 0

    def step(self, u, grad):
        if self.m is None:
            self.m, self.s = np.zeros_like(u), np.zeros_like(u)
        self.t += 1
        lr = rate_at(self.lr, self.t - 1)
        u, self.m, self.s = adam_update(u, grad, self.m, self.s, self.t, lr, self.beta1, self.beta2, self.eps)
        return u

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

"""The hyperparameters of SGD with momentum that SMD learns, and their coordinates.

:class:`Hyperparameters` describes ``alpha_t = alpha_0 / (1 + t/K)^beta`` (``beta = 0``:
a constant rate) and ``mu``, and maps the learned ones to a vector ``u``, in log space
as the paper does (``log(alpha/(1-mu))``, the log effective learning rate;
``log(1-mu)``; ``log beta``) or raw, with the authors' bounds (:data:`BOUNDS`).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from .training import check_momentum

LEARNABLE = ("lr", "momentum", "beta")
SPACES = ("log", "raw")
# The authors' bounds (on the effective learning rate, 1 - mu and beta).
BOUNDS = {"lr": (1e-4, 10.0), "momentum": (1e-4, 1.0), "beta": (1e-4, 1e3)}
LOG_NAMES = {"lr": "log_eff_lr", "momentum": "log_one_minus_mu", "beta": "log_beta"}


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

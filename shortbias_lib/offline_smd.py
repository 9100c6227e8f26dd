"""Stochastic meta-descent on the offline experiment's schedule (Algorithm 1 on
``(log alpha_0/(1-mu), log beta)``), resumable, and the trajectories read back from a result."""

import math

import numpy as np

from .errors import DivergenceError
from .hypergrad import Adam, Hyperparameters, hypergradient
from .models import mlp_apply


def smd_trajectory(state, alpha0, beta, K, horizon, meta_steps, batches, objective_batches,
                   momentum=0.9, meta_lr=0.01, clip=10.0, convention="paper", apply=mlp_apply,
                   resume=None, checkpoint=None, checkpoint_every=None, progress=None):
    """SMD (Algorithm 1) on ``(log alpha_0/(1-mu), log beta)`` with Adam, from ``state`` every meta step.

    Meta step ``m`` trains on batches ``m * horizon, ..., (m + 1) * horizon - 1``
    of ``batches`` (fresh, reproducible, drawn one at a time so memory does not
    grow with the horizon) and differentiates the mean loss on
    ``objective_batches`` at ``w_T`` by forward mode
    (:func:`shortbias_lib.hypergrad.hypergradient`, Equations 8-9). Raw
    hypergradients are clipped to ``+-clip`` and ``u`` is kept within the
    authors' bounds. A lookahead that diverges counts as a hypergradient of
    ``+clip`` on the learning rate (step back) and a NaN meta-loss.
    ``resume`` is a dict from an earlier ``checkpoint(dict)`` call.
    Returns a dict: ``u`` (M+1, 2), ``meta_loss`` (M,), ``hypergrad`` (M, 2).
    """
    hyper = Hyperparameters(lr=float(alpha0), momentum=momentum, beta=float(beta), K=K,
                            learn=("lr", "beta"), space="log")
    low, high = hyper.bounds()
    optimizer = Adam(meta_lr)
    u = np.clip(hyper.vector(), low, high)
    us, losses, grads = [u.copy()], [], []
    if resume is not None:
        us = [row for row in np.asarray(resume["u"])]
        losses = list(np.asarray(resume["meta_loss"]))
        grads = [row for row in np.asarray(resume["hypergrad"]).reshape(-1, 2)]
        u = us[-1].copy()
        optimizer.load_state_dict({key: resume[f"adam_{key}"] for key in ("m", "s", "t")})
    for m in range(len(losses), meta_steps):
        current = hyper.from_vector(u)
        try:
            lookahead = (batches(m * horizon + i) for i in range(horizon))
            result = hypergradient(apply, state, current, lookahead, objective_batches, convention)
            loss, grad = result.loss, np.asarray(result.grad, dtype=np.float64)
            if not np.all(np.isfinite(grad)):
                raise DivergenceError(horizon, float("nan"), "hypergradient")
        except DivergenceError:
            loss, grad = float("nan"), np.array([clip, 0.0])
        u = np.clip(optimizer.step(u, np.clip(grad, -clip, clip)), low, high)
        us.append(u.copy())
        losses.append(loss)
        grads.append(grad)
        if progress is not None:
            progress.update(1)
        done = m + 1
        if checkpoint is not None and checkpoint_every and (done % checkpoint_every == 0
                                                            or done == meta_steps):
            checkpoint(_smd_state(us, losses, grads, optimizer))
    return _smd_state(us, losses, grads, optimizer)


def _smd_state(us, losses, grads, optimizer):
    return {"u": np.asarray(us, dtype=np.float64).reshape(-1, 2),
            "meta_loss": np.asarray(losses, dtype=np.float64),
            "hypergrad": np.asarray(grads, dtype=np.float64).reshape(-1, 2),
            **{f"adam_{key}": np.asarray(value) for key, value in optimizer.state_dict().items()}}


def smd_log10(u, momentum):
    """``(log10 alpha_0, log10 beta)`` from SMD coordinates ``(log alpha_0/(1-mu), log beta)``."""
    u = np.asarray(u, dtype=np.float64)
    return (u[..., 0] + math.log1p(-momentum)) / math.log(10), u[..., 1] / math.log(10)


def smd_trajectories(arrays, config):
    """The SMD runs of a result: list of dicts (horizon, beta0, log10 alpha0/beta path, meta losses)."""
    out = []
    starts = [(h, b) for h in config["smd_horizons"] for b in config["smd_betas"]]
    for j, (h, beta0) in enumerate(starts):
        if f"smd_{j}_u" not in arrays:
            continue
        la, lb = smd_log10(arrays[f"smd_{j}_u"], config["momentum"])
        out.append({"horizon": int(h), "beta0": float(beta0), "log10_alpha0": la, "log10_beta": lb,
                    "meta_loss": arrays[f"smd_{j}_meta_loss"]})
    return out


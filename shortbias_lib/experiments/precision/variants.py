"""The variants of the hypergradient precision measurement and the computations they run.

:func:`variants` lists them (float64, float32, the generic double-backward path,
perturbed starts, other minibatches; their kinds are :data:`KINDS`);
:func:`perturb` and :func:`start_state` make a variant's starting weights,
:func:`measure` computes one forward-mode hypergradient, and
:func:`rounded_weights_run` trains in float64 with the weights rounded to float32
after every step. The experiment that runs them is :mod:`shortbias_lib.experiments.precision.experiment`.
"""

import math
import time

import numpy as np
import torch

from ...errors import DivergenceError
from ...engine.hvp import autograd_grad_hvp
from ...engine.hypergrad import hypergradient
from ...engine.models import loss_fn, mlp_apply
from ...engine.batches import derived_seed
from ...engine.training import init_state, momentum_step

KINDS = ("float64", "float32", "float32 double backward", "float64 perturbed", "float32 perturbed",
         "float64 small perturbation", "float64 other minibatches", "float32 other minibatches")


def variants(config):
    """The variants of a configuration, in the order of the result's first axis.

    A list of dicts: ``kind`` (one of :data:`KINDS`), ``dtype``, ``eps`` (relative
    perturbation of the starting weights, 0 for none), ``direction`` (which
    perturbation, 1-based; 0 for none), ``batches`` (minibatch sequence, 0
    is the reference's) and ``path``: ``"fast"`` (the default Hessian-vector
    products of :func:`~shortbias_lib.engine.hypergrad.hypergradient`) or ``"double backward"``
    (its generic path, :func:`~shortbias_lib.engine.hvp.autograd_grad_hvp`: the same
    mathematics with its operations in another order, so another float32 roundoff).
    """
    out = [{"kind": "float64", "dtype": "float64", "eps": 0.0, "direction": 0, "batches": 0},
           {"kind": "float32", "dtype": "float32", "eps": 0.0, "direction": 0, "batches": 0},
           {"kind": "float32 double backward", "dtype": "float32", "eps": 0.0, "direction": 0, "batches": 0,
            "path": "double backward"}]
    eps = float(config["perturbation"])
    out += [{"kind": "float64 perturbed", "dtype": "float64", "eps": eps, "direction": k + 1, "batches": 0}
            for k in range(int(config["perturbed_runs"]))]
    out += [{"kind": "float32 perturbed", "dtype": "float32", "eps": eps, "direction": k + 1, "batches": 0}
            for k in range(int(config["perturbed_runs_float32"]))]
    if config["small_perturbation"]:
        out.append({"kind": "float64 small perturbation", "dtype": "float64",
                    "eps": float(config["small_perturbation"]), "direction": 1, "batches": 0})
    for r in range(int(config["batch_resamples"])):
        out += [{"kind": f"{dtype} other minibatches", "dtype": dtype, "eps": 0.0, "direction": 0,
                 "batches": r + 1} for dtype in ("float64", "float32")]
    for variant in out:
        variant.setdefault("path", "fast")
    return out


def perturb(params, eps, generator):
    """``p + eps * rms(p) * z`` for each tensor ``p`` (``z`` standard Gaussian, drawn in float64
    on the CPU from ``generator``, so a direction does not depend on dtype or device).

    Computed in float64 and returned in each tensor's dtype; ``eps = 0`` returns exact copies.
    """
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be finite and >= 0; got {eps!r}")
    out = []
    for p in params:
        z = torch.randn(p.shape, generator=generator, dtype=torch.float64)
        base = p.detach().to("cpu", torch.float64)
        rms = base.pow(2).mean().sqrt()
        out.append((base + eps * rms * z).to(device=p.device, dtype=p.dtype))
    return tuple(out)


def start_state(warm, variant, seed, device="cpu"):
    """The starting :class:`~shortbias_lib.engine.training.TrainState` of ``variant`` (a dict of
    :func:`variants`) from the warm start ``warm``: cast to the variant's dtype, weights
    perturbed along direction ``variant["direction"]`` (velocity unchanged)."""
    dtype = getattr(torch, variant["dtype"])
    params = tuple(p.to(device=device, dtype=dtype) for p in warm.params)
    velocity = tuple(v.to(device=device, dtype=dtype) for v in warm.velocity)
    if variant["direction"]:
        generator = torch.Generator().manual_seed(derived_seed(seed, 9, variant["direction"]))
        params = perturb(params, variant["eps"], generator)
    return init_state(params, velocity, step=0)


def measure(state, hyper, batches, horizon, objective_batches, convention="paper", apply=mlp_apply,
            path="fast"):
    """One forward-mode hypergradient of ``horizon`` steps on ``batches(0), batches(1), ...``
    (drawn lazily) from ``state``, by the ``path`` of :func:`variants`. Returns
    ``(meta_loss, grad (P,), diverged_step, cpu_seconds)``; a diverged lookahead gives NaN
    and its step (else -1)."""
    if path not in ("fast", "double backward"):
        raise ValueError(f"path must be 'fast' or 'double backward'; got {path!r}")
    grad_hvp = autograd_grad_hvp(apply) if path == "double backward" else None
    start = time.process_time()
    try:
        result = hypergradient(apply, state, hyper, (batches(i) for i in range(int(horizon))),
                               objective_batches, convention, t0=0, grad_hvp=grad_hvp)
        loss, grad, bad = result.loss, np.asarray(result.grad, dtype=np.float64), -1
        if not np.all(np.isfinite(grad)):
            raise DivergenceError(int(horizon), float("nan"), "hypergradient")
    except DivergenceError as err:
        loss, grad, bad = float("nan"), np.full(len(hyper.learn), np.nan), int(err.step)
    return loss, grad, bad, time.process_time() - start


def rounded_weights_run(state, hyper, batches, horizons, objective_batches, convention="paper",
                        apply=mlp_apply):
    """Train in float64 from ``state`` but round the weights to float32 after every step.

    The schedule is ``hyper``'s (read at ``t = 0, 1, ...``), the minibatches
    ``batches(t)``. Returns ``(objective (H,), lost (max(horizons),))``: the
    meta-objective (mean loss over ``objective_batches``) after each horizon,
    NaN from a divergence on, and per step the fraction of the weights that
    moved in float64 but whose float32 value did not change (an update
    smaller than half a unit in the last place of float32, lost entirely).
    """
    horizons = [int(h) for h in horizons]
    params = tuple(p.detach().to(torch.float64).to(torch.float32).to(torch.float64) for p in state.params)
    velocity = tuple(v.detach().to(torch.float64) for v in state.velocity)
    objective, lost = np.full(len(horizons), np.nan), np.full(max(horizons), np.nan)
    for t in range(max(horizons)):
        images, labels = batches(t)
        leaves = tuple(p.requires_grad_(True) for p in params)
        with torch.enable_grad():
            loss = loss_fn(apply, leaves, images.to(torch.float64), labels)
            grads = torch.autograd.grad(loss, leaves)
        if not math.isfinite(loss.item()):
            break
        alpha = hyper.at(t)[0]
        with torch.no_grad():
            exact, velocity = momentum_step(tuple(p.detach() for p in leaves), velocity, grads, alpha,
                                            hyper.momentum, convention)
            rounded = tuple(w.to(torch.float32).to(torch.float64) for w in exact)
            moved = sum(int((w != p).sum()) for w, p in zip(exact, leaves))
            stuck = sum(int(((w != p) & (r == p)).sum()) for w, r, p in zip(exact, rounded, leaves))
        lost[t] = stuck / max(moved, 1)
        params = rounded
        if t + 1 in horizons:
            with torch.no_grad():
                objective[horizons.index(t + 1)] = float(np.mean(
                    [loss_fn(apply, params, x.to(torch.float64), y).item() for x, y in objective_batches]))
    return objective, lost


__all__ = ["KINDS", "variants", "perturb", "start_state", "measure", "rounded_weights_run"]

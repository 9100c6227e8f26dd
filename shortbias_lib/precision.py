"""Precision and sensitivity of long-horizon hypergradients (Section 3 at the paper's time scale).

The offline experiment's SMD differentiates the training loss after T steps
by forward mode in float32. At long horizons float32 and float64 disagree.
Is that roundoff amplified by the training dynamics (chaos), which would make
any single-trajectory hypergradient a noisy estimate in any precision, or
float32 arithmetic itself, which float64 would remove? This module measures
it at the offline experiment's warm start.

For each horizon T the hypergradient with respect to
``u = (log alpha_0/(1-mu), log beta)`` of the inverse-time schedule (and the
meta-objective) is computed in several **variants**, all from the same
float32 warm start (exactly representable in float64) and the same
minibatches unless stated:

- ``float64``: the reference;
- ``float32``: the precision the offline experiment's SMD uses;
- ``float32 double backward``: float32 by the generic Hessian-vector products of
  :func:`~shortbias_lib.hvp.autograd_grad_hvp`: the same mathematics with the
  operations in another order, so only the roundoff differs;
- ``float64 perturbed``: starting weights ``w + eps * rms(w) * z`` (each
  tensor, ``z`` standard Gaussian, ``eps`` = ``perturbation``, about float32's
  unit roundoff), several independent ``z``: their spread is what a
  roundoff-sized change of the start does when the arithmetic is exact enough;
- ``float32 perturbed``: the same in float32 (the perturbation is rounded, so
  it moves each weight by about one unit in the last place);
- ``float64 small perturbation``: the first perturbation's direction scaled
  to ``small_perturbation``: if the difference shrinks in proportion, the
  response is linear (smooth), if not it is not (chaos, or ReLU kinks);
- ``float64 other minibatches`` / ``float32 other minibatches``: other
  minibatch sequences: the float64 ones give the noise SMD already faces from
  one meta step to the next, the float32 ones how float32's error varies.

A last run, :func:`rounded_weights_run`, trains in float64 but rounds the
weights to float32 after every step (one more way to make float32-sized
roundoff) and counts the weight updates that this rounding loses entirely.

Relative differences (:func:`relative_differences`), their summary per
horizon (:func:`summary`) and a verdict (:func:`verdicts`: ``"agree"``,
``"sensitivity"``, ``"roundoff"``) are computed here, and
:func:`conclusion` words them, so the chapter's conclusion comes from the
numbers. The entry point for the CLI and the chapter is :func:`run_precision`.
"""

import math
import time
from pathlib import Path

import numpy as np
import torch

from . import runs
from .errors import DivergenceError
from .hvp import autograd_grad_hvp
from .hypergrad import hypergradient
from .hyperparams import Hyperparameters
from .models import loss_fn, mlp_apply
from .offline import BASE as OFFLINE_BASE
from .offline import (StepBatches, _load_same, _seed, json_roundtrip, seeded_warm_start, warm_arrays,
                      warm_state)
from .profiles import check_profile, pick
from .training import check_convention, init_state, momentum_step

CHAPTER = "hypergrad_precision"

# Shared by every profile: the offline experiment's network, warm start and momentum,
# and the schedule at which the float32/float64 disagreement was first seen.
BASE = {
    "chapter": CHAPTER,
    **{key: OFFLINE_BASE[key] for key in ("sizes", "init_std", "momentum", "batch_size", "warm_steps",
                                          "warm_lr", "warm_momentum", "convention")},
    "warm_dtype": OFFLINE_BASE["dtype"],   # the warm start is the offline experiment's (float32)
    "alpha0": 0.05,
    "beta": 1.0,
    "K": 5000.0,
    "perturbation": 1e-7,                  # relative; float32's unit roundoff is 6e-8
    "small_perturbation": 1e-10,           # 0: no linearity check
}

# Costs on one CPU core: a float64 hypergradient step about 5 ms, float32 about 3 ms.
SIZES = {
    "smoke": {"horizons": (5, 10, 20), "train_limit": 2000, "objective_examples": 500,
              "eval_chunk": 500, "perturbed_runs": 2, "perturbed_runs_float32": 1,
              "batch_resamples": 1},
    "quick": {"horizons": (100, 300, 1000), "train_limit": None, "objective_examples": 10000,
              "eval_chunk": 2000, "perturbed_runs": 3, "perturbed_runs_float32": 1,
              "batch_resamples": 2},
    "paper": {"horizons": (100, 300, 1000, 5000, 20000), "train_limit": None,
              "objective_examples": 60000, "eval_chunk": 2000, "perturbed_runs": 5,
              "perturbed_runs_float32": 3, "batch_resamples": 4},
    # The offline archive's SMD horizons (and 300) on 1 CPU core in about 5 minutes;
    # the result is committed in ``archive/`` (see ``ARCHIVE_COMMAND``).
    "archive": {"horizons": (100, 300, 1000, 5000), "train_limit": None, "objective_examples": 10000,
                "eval_chunk": 2000, "perturbed_runs": 3, "perturbed_runs_float32": 1,
                "batch_resamples": 2},
}
EXTRA_PROFILES = ("archive",)
ARCHIVE_DIR = "archive"
ARCHIVE_COMMAND = "python -m shortbias_lib hypergrad_precision --profile archive --results archive"

# Verdicts (see :func:`verdicts`).
AGREE_TOL = 1e-2      # float32 within 1% of float64 on both components: precision does not matter
SPREAD_FACTOR = 3.0   # "within the spread": at most this times the largest perturbed difference

KINDS = ("float64", "float32", "float32 double backward", "float64 perturbed", "float32 perturbed",
         "float64 small perturbation", "float64 other minibatches", "float32 other minibatches")
# The float32 computations on the reference minibatches: the same arithmetic up to roundoff.
FLOAT32_REFERENCE = ("float32", "float32 double backward", "float32 perturbed")
COMPONENTS = ("log effective learning rate", "log beta")


def config_for(profile, seed=0):
    """The full configuration of a profile (what is saved with, and identifies, a result)."""
    check_profile(profile, extra=EXTRA_PROFILES)
    runs.check_seed(seed)
    config = dict(BASE)
    config.update(SIZES[profile] if profile in EXTRA_PROFILES else pick(profile, SIZES))
    return check_config(config)


def check_config(config):
    """Validate a configuration; returns it with tuples normalised."""
    config = dict(config)
    for key in ("horizons", "sizes"):
        config[key] = tuple(config[key])
    horizons = config["horizons"]
    if not horizons or any(int(h) != h or h < 1 for h in horizons) or list(horizons) != sorted(set(horizons)):
        raise ValueError(f"horizons must be increasing positive integers; got {horizons}")
    for key in ("batch_size", "objective_examples", "eval_chunk"):
        if int(config[key]) != config[key] or config[key] < 1:
            raise ValueError(f"{key} must be a positive integer; got {config[key]!r}")
    for key in ("perturbed_runs", "perturbed_runs_float32", "batch_resamples", "warm_steps"):
        if int(config[key]) != config[key] or config[key] < 0:
            raise ValueError(f"{key} must be an integer >= 0; got {config[key]!r}")
    if config["objective_examples"] % config["eval_chunk"]:
        raise ValueError(f"eval_chunk must divide objective_examples ({config['objective_examples']}); "
                         f"got {config['eval_chunk']}")
    if not (math.isfinite(config["perturbation"]) and config["perturbation"] > 0):
        raise ValueError(f"perturbation must be finite and > 0; got {config['perturbation']!r}")
    if not (math.isfinite(config["small_perturbation"]) and config["small_perturbation"] >= 0):
        raise ValueError(f"small_perturbation must be finite and >= 0; got {config['small_perturbation']!r}")
    if config["small_perturbation"] and config["perturbed_runs"] < 1:
        raise ValueError("small_perturbation needs perturbed_runs >= 1 (it scales the first direction)")
    if config["warm_dtype"] not in ("float32", "float64"):
        raise ValueError(f"warm_dtype must be 'float32' or 'float64'; got {config['warm_dtype']!r}")
    # The schedule's own checks (alpha_0 > 0, beta > 0 to be learned in log space, K > 0).
    Hyperparameters(lr=float(config["alpha0"]), momentum=config["momentum"], beta=float(config["beta"]),
                    K=float(config["K"]), learn=("lr", "beta"), space="log")
    check_convention(config["convention"])
    return config


# ---------------------------------------------------------------- variants

def variants(config):
    """The variants of a configuration, in the order of the result's first axis.

    A list of dicts: ``kind`` (one of :data:`KINDS`), ``dtype``, ``eps`` (relative
    perturbation of the starting weights, 0 for none), ``direction`` (which
    perturbation, 1-based; 0 for none), ``batches`` (minibatch sequence, 0
    is the reference's) and ``path``: ``"fast"`` (the default Hessian-vector
    products of :func:`~shortbias_lib.hypergrad.hypergradient`) or ``"double backward"``
    (its generic path, :func:`~shortbias_lib.hvp.autograd_grad_hvp`: the same
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
    """The starting :class:`~shortbias_lib.training.TrainState` of ``variant`` (a dict of
    :func:`variants`) from the warm start ``warm``: cast to the variant's dtype, weights
    perturbed along direction ``variant["direction"]`` (velocity unchanged)."""
    dtype = getattr(torch, variant["dtype"])
    params = tuple(p.to(device=device, dtype=dtype) for p in warm.params)
    velocity = tuple(v.to(device=device, dtype=dtype) for v in warm.velocity)
    if variant["direction"]:
        generator = torch.Generator().manual_seed(_seed(seed, 9, variant["direction"]))
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


# ---------------------------------------------------------------- the experiment

def result_path(profile, seed, results=None):
    """Where :func:`run_precision` writes its result file."""
    return runs.results_dir(results) / f"{CHAPTER}_{profile}_seed{seed}.npz"


def archive_path(seed=0):
    """The committed result of the ``archive`` profile (see :data:`ARCHIVE_COMMAND`)."""
    return runs.REPO_ROOT / ARCHIVE_DIR / f"{CHAPTER}_archive_seed{seed}.npz"


def run_experiment(config, train_data, path, *, profile="quick", seed=0, device="cpu", resume=True,
                   on_checkpoint=None, data_fingerprint=None):
    """Run (or resume) the measurement for ``config`` on ``train_data = (images, labels)``.

    Returns ``(arrays, meta)``. A finished file at ``path`` with the same
    configuration, profile and seed is reused when ``resume``; a partial
    checkpoint (``path`` with suffix ``.partial.npz``, written after every
    hypergradient) is continued. ``on_checkpoint(stage)`` is called after each
    checkpoint (tests use it to interrupt a run). Uses one torch thread on the
    CPU (the unbatched network gains nothing from more) and flushes subnormal
    numbers as the offline experiment does. ``data_fingerprint`` is recorded in the
    provenance; a file recorded from other data is not reused.
    """
    config = check_config(config)
    path = Path(path)
    device = torch.device(device)
    if resume:
        found = _load_same(path, config, profile, seed, data_fingerprint)
        if found is not None:
            return _with_summary(found)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    try:
        with runs.run_lock(path):  # a second run of this file refuses instead of mixing checkpoints
            return _run(config, train_data, path, profile, seed, device, resume, on_checkpoint,
                        data_fingerprint)
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


def _run(config, train_data, path, profile, seed, device, resume, on_checkpoint, data_fingerprint):
    partial = path.with_suffix(".partial.npz")
    horizons = tuple(int(h) for h in config["horizons"])
    table = variants(config)
    V, H = len(table), len(horizons)
    # The data in the warm start's dtype, so that every variant sees the same values (float32
    # images are exact in float64).
    warm_dtype = getattr(torch, config["warm_dtype"])
    images, labels = train_data[0].to(device=device, dtype=warm_dtype), train_data[1].to(device)
    n_obj = int(config["objective_examples"])
    if n_obj > len(labels):
        raise ValueError(f"objective_examples must be <= the {len(labels)} training examples; got {n_obj}")
    arrays = {"horizons": np.asarray(horizons),
              "variant_kind": np.array([v["kind"] for v in table]),
              "variant_dtype": np.array([v["dtype"] for v in table]),
              "variant_eps": np.array([v["eps"] for v in table], dtype=np.float64),
              "variant_direction": np.array([v["direction"] for v in table]),
              "variant_batches": np.array([v["batches"] for v in table]),
              "variant_path": np.array([v["path"] for v in table]),
              "grad": np.full((V, H, 2), np.nan), "meta_loss": np.full((V, H), np.nan),
              "diverged_step": np.full((V, H), -1), "seconds": np.full((V, H), np.nan),
              "done": np.zeros((V, H), dtype=bool),
              "rounded_objective": np.full(H, np.nan), "rounded_lost": np.full(max(horizons), np.nan),
              "rounded_done": np.asarray(False)}
    if resume:
        saved = _load_same(partial, config, profile, seed, data_fingerprint)
        if saved is not None:
            arrays.update(saved[0])
    else:
        partial.unlink(missing_ok=True)
    started = runs.provenance(profile, device, seed, **config)
    if data_fingerprint is not None:
        started["data_fingerprint"] = data_fingerprint

    def save(stage):
        runs.save_result(partial, arrays, dict(started, stage=stage))
        if on_checkpoint is not None:
            on_checkpoint(stage)

    # The offline experiment's warm start: same seeds, same code, in its dtype.
    if "warm_params_0" not in arrays:
        arrays.update(warm_arrays(seeded_warm_start(config, seed, images, labels, warm_dtype, device)))
        save("warm start")
    warm = warm_state(arrays)

    hyper = Hyperparameters(lr=float(config["alpha0"]), momentum=config["momentum"],
                            beta=float(config["beta"]), K=float(config["K"]), learn=("lr", "beta"),
                            space="log")
    arrays["names"] = np.array(hyper.names)
    chunk = int(config["eval_chunk"])
    # The meta-objective's examples in each dtype; lookahead batches are cast one at a time.
    objectives = {name: [(images[s:s + chunk].to(getattr(torch, name)), labels[s:s + chunk])
                         for s in range(0, n_obj, chunk)] for name in ("float64", "float32")}
    for k, horizon in enumerate(horizons):       # short horizons first: useful partial results
        for j, variant in enumerate(table):
            if arrays["done"][j, k]:
                continue
            batches = _cast(StepBatches(images, labels, config["batch_size"], _seed(seed, 8, variant["batches"])),
                            getattr(torch, variant["dtype"]))
            state = start_state(warm, variant, seed, device)
            loss, grad, bad, seconds = measure(state, hyper, batches, horizon, objectives[variant["dtype"]],
                                               config["convention"], path=variant["path"])
            arrays["meta_loss"][j, k], arrays["grad"][j, k] = loss, grad
            arrays["diverged_step"][j, k], arrays["seconds"][j, k] = bad, seconds
            arrays["done"][j, k] = True
            save(f"T={horizon}: {variant['kind']} ({j + 1}/{V})")

    if not bool(arrays["rounded_done"]):
        reference = _cast(StepBatches(images, labels, config["batch_size"], _seed(seed, 8, 0)), torch.float64)
        arrays["rounded_objective"], arrays["rounded_lost"] = rounded_weights_run(
            start_state(warm, table[0], seed, device), hyper, reference, horizons, objectives["float64"],
            config["convention"])
        arrays["rounded_done"] = np.asarray(True)
        save("float64 with weights rounded to float32")

    arrays.update(summary(arrays))
    meta = dict(started, stage="finished", finished_utc=runs.utc_now())
    runs.save_result(path, arrays, meta)
    partial.unlink(missing_ok=True)
    return arrays, json_roundtrip(meta)


def _with_summary(found):
    """A reused result ``(arrays, meta)`` with its summary recomputed by this version of the code."""
    arrays, meta = found
    arrays.update(summary(arrays))
    return arrays, meta


def _cast(batches, dtype):
    """``batches(t)`` with its images cast to ``dtype`` (the data stay in one copy)."""
    def typed(t):
        x, y = batches(t)
        return x.to(dtype), y
    return typed


def run_precision(profile="quick", *, device="auto", seed=0, data_root=None, results=None, resume=True,
                  path=None):
    """CLI/chapter entry point: the precision measurement of ``profile``; returns ``(arrays, meta)``.

    Writes ``results/hypergrad_precision_{profile}_seed{seed}.npz`` (or
    ``path``), reusing a finished file of the same configuration and resuming
    a partial one when ``resume``.
    """
    from .data import load

    config = config_for(profile, seed)
    device = runs.resolve_device(device)
    path = Path(path) if path is not None else result_path(profile, seed, results)
    # The data come first (seconds), so that a result made from other data is not reused.
    train_set = load("mnist", train=True, root=data_root, limit=config["train_limit"])
    return run_experiment(config, (train_set.images, train_set.labels), path, profile=profile,
                          seed=seed, device=device, resume=resume,
                          data_fingerprint=[train_set.fingerprint])


def load_precision(path):
    """Read a result file written by :func:`run_precision` (a finished one with its summary
    recomputed by this version of :func:`summary`)."""
    arrays, meta = runs.load_result(path)
    if meta.get("config", {}).get("chapter") != CHAPTER:
        raise ValueError(f"path must be a result file of the hypergradient precision measurement; "
                         f"{path} is not")
    if meta.get("stage") == "finished":
        return _with_summary((arrays, meta))   # the analysis of this version of the code
    return arrays, meta


# ---------------------------------------------------------------- analysis

def _rows(arrays, kind):
    return np.flatnonzero(np.asarray(arrays["variant_kind"]) == kind)


def reference_rows(arrays):
    """For each variant, the row it is compared with: the unperturbed float64 run on the same
    minibatches, except the float64 runs on other minibatches, which are compared with the
    reference (their difference is minibatch noise)."""
    kinds = np.asarray(arrays["variant_kind"])
    batches = np.asarray(arrays["variant_batches"])
    base = {int(b): j for j, (k, b) in enumerate(zip(kinds, batches))
            if k in ("float64", "float64 other minibatches")}
    ref = base[0]
    return np.array([ref if kind == "float64 other minibatches" else base.get(int(b), ref)
                     for kind, b in zip(kinds, batches)])


def relative_differences(arrays, signed=False):
    """Relative differences of every variant to its reference (:func:`reference_rows`).

    Returns ``(grad (V, H, 2), meta_loss (V, H))`` with ``|x - x_ref| / |x_ref|``
    per component (``(x - x_ref) / |x_ref|`` if ``signed``); NaN where a run
    diverged; the reference's own row is 0.
    """
    ref = reference_rows(arrays)
    grad = np.asarray(arrays["grad"], dtype=np.float64)
    loss = np.asarray(arrays["meta_loss"], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_grad = (grad - grad[ref]) / np.abs(grad[ref])
        rel_loss = (loss - loss[ref]) / np.abs(loss[ref])
    return (rel_grad, rel_loss) if signed else (np.abs(rel_grad), np.abs(rel_loss))


def _nanmax(values, shape):
    """Max over the first axis ignoring NaN; NaN where there is nothing (no rows or all NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 0:
        return np.full(shape, np.nan)
    out = np.where(np.isnan(values), -np.inf, values).max(axis=0)
    return np.where(np.isneginf(out), np.nan, out)


def _nanmin(values, shape):
    return -_nanmax(-np.asarray(values, dtype=np.float64), shape)


def summary(arrays):
    """Per-horizon summary arrays (stored with the result; names start with ``summary_``).

    Relative differences are per component, to float64 on the same minibatches:

    - ``summary_float32`` (H, 2), ``summary_float32_loss`` (H,): float32 (fast path);
      ``summary_float32_double`` (H, 2): float32 by double backward; ``summary_perturbed32_max``
      (H, 2): float32 from perturbed starts; ``summary_float32_any`` (H, 2) and
      ``summary_float32_any_loss`` (H,): the largest over these float32 computations
      (:data:`FLOAT32_REFERENCE`); ``summary_float32_fewest`` (H,): the smallest (larger component);
    - ``summary_perturbed_max``/``_min`` (H, 2), ``summary_perturbed_loss_max`` (H,): float64 from
      perturbed starts; ``summary_perturbed_over`` (H,): how many of them differ by more than
      :data:`AGREE_TOL` (either component);
    - ``summary_small`` (H, 2) and ``summary_linearity`` (H, 2): the small perturbation's
      difference, and its ratio to the first perturbation's divided by the ratio of their
      sizes (1: the difference is proportional to the perturbation);
    - ``summary_batches_min``/``_max`` (H, 2): float64 on other minibatches vs the reference;
    - ``summary_scale`` (H, 2): each component's typical size, the root mean square of the
      float64 hypergradients over the minibatch sequences; ``summary_float32_across`` (H, 2):
      the smallest and largest error of float32 (fast path) over the sequences relative to that
      (the larger component; unlike the plain relative difference it does not blow up on a
      sequence where a component happens to be near zero); ``summary_batches_scaled`` (H, 2):
      the same for float64 on the other minibatches against the reference;
      ``summary_float32_signed`` (S, H, 2): float32's signed relative error on each sequence;
    - ``summary_rounded_loss`` (H,): the meta-objective of the float64 run with weights rounded
      to float32, relative to float64's; ``summary_lost`` (H,): the mean share of weight updates
      that run lost over the first T steps;
    - ``summary_verdict`` (H,) from :func:`verdicts`.
    """
    rel, rel_loss = relative_differences(arrays)
    signed, _ = relative_differences(arrays, signed=True)
    H = len(arrays["horizons"])
    rows = {kind: _rows(arrays, kind) for kind in KINDS}
    f32 = rows["float32"][0]
    f32_all = np.concatenate([rows[kind] for kind in FLOAT32_REFERENCE])
    out = {"summary_float32": rel[f32], "summary_float32_loss": rel_loss[f32],
           "summary_float32_double": _nanmax(rel[rows["float32 double backward"]], (H, 2)),
           "summary_perturbed32_max": _nanmax(rel[rows["float32 perturbed"]], (H, 2)),
           "summary_float32_any": _nanmax(rel[f32_all], (H, 2)),
           "summary_float32_any_loss": _nanmax(rel_loss[f32_all], (H,)),
           "summary_float32_fewest": _nanmin(rel[f32_all].max(axis=-1), (H,)),
           "summary_perturbed_max": _nanmax(rel[rows["float64 perturbed"]], (H, 2)),
           "summary_perturbed_min": _nanmin(rel[rows["float64 perturbed"]], (H, 2)),
           "summary_perturbed_loss_max": _nanmax(rel_loss[rows["float64 perturbed"]], (H,)),
           "summary_perturbed_over": np.sum(rel[rows["float64 perturbed"]].max(axis=-1) > AGREE_TOL, axis=0),
           "summary_batches_max": _nanmax(rel[rows["float64 other minibatches"]], (H, 2)),
           "summary_batches_min": _nanmin(rel[rows["float64 other minibatches"]], (H, 2))}
    small = rows["float64 small perturbation"]
    out["summary_small"] = out["summary_linearity"] = np.full((H, 2), np.nan)
    if len(small):
        direction = np.asarray(arrays["variant_direction"])
        first = [j for j in rows["float64 perturbed"] if direction[j] == direction[small[0]]]
        out["summary_small"] = rel[small[0]]
        if first:
            eps = np.asarray(arrays["variant_eps"], dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                out["summary_linearity"] = (rel[small[0]] / rel[first[0]]) / (eps[small[0]] / eps[first[0]])
    sequences = np.concatenate([[f32], rows["float32 other minibatches"]])
    out["summary_float32_signed"] = signed[sequences]
    grad = np.asarray(arrays["grad"], dtype=np.float64)
    ref64 = reference_rows(arrays)[sequences]
    out["summary_scale"] = np.sqrt(np.nanmean(grad[ref64] ** 2, axis=0))          # (H, 2)
    other = rows["float64 other minibatches"]
    with np.errstate(divide="ignore", invalid="ignore"):
        size = (np.abs(grad[sequences] - grad[ref64]) / out["summary_scale"]).max(axis=-1)   # (S, H)
        noise = (np.abs(grad[other] - grad[rows["float64"][0]]) / out["summary_scale"]).max(axis=-1)  # (R, H)
    out["summary_float32_across"] = np.stack([_nanmin(size, (H,)), _nanmax(size, (H,))], axis=-1)
    out["summary_batches_scaled"] = np.stack([_nanmin(noise, (H,)), _nanmax(noise, (H,))], axis=-1)
    loss = np.asarray(arrays["meta_loss"], dtype=np.float64)
    ref, rounded = loss[rows["float64"][0]], np.asarray(arrays["rounded_objective"], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["summary_rounded_loss"] = np.abs(rounded - ref) / np.abs(ref)
    lost = np.asarray(arrays["rounded_lost"], dtype=np.float64)
    out["summary_lost"] = np.array([np.nanmean(lost[:int(T)]) if np.any(np.isfinite(lost[:int(T)]))
                                    else np.nan for T in arrays["horizons"]])
    out["summary_verdict"] = np.array(verdicts(dict(arrays, **out)))
    return out


def verdicts(arrays, agree_tol=AGREE_TOL, spread_factor=SPREAD_FACTOR):
    """Per horizon, what the float32/float64 difference of the hypergradient is, judged on the
    float32 computation farthest from float64 (:data:`FLOAT32_REFERENCE`):

    - ``"agree"``: every float32 computation is within ``agree_tol`` (relative) of float64
      on both components: precision does not matter;
    - ``"sensitivity"``: one is not, but it is within ``spread_factor`` times the largest
      difference that a roundoff-sized perturbation of the start makes in float64: the
      hypergradient itself is that sensitive, and float64 would not make it more meaningful
      (roundoff is not the issue, sensitivity is);
    - ``"roundoff"``: a float32 computation differs by more than the perturbations of
      float64 explain: float64 is stable there and float32 roundoff is the issue;
    - ``"diverged"``: the reference or a float32 run diverged.

    ``arrays`` is a result (its ``summary_*`` arrays are used when present).
    """
    if "summary_float32_any" in arrays:
        f32s, spreads = arrays["summary_float32_any"], arrays["summary_perturbed_max"]
    else:
        rel, _ = relative_differences(arrays)
        rows = np.concatenate([_rows(arrays, kind) for kind in FLOAT32_REFERENCE])
        f32s = _nanmax(np.where(np.isnan(rel[rows]), np.inf, rel[rows]), (len(arrays["horizons"]), 2))
        spreads = _nanmax(rel[_rows(arrays, "float64 perturbed")], f32s.shape)
    out = []
    for f32, spread in zip(np.asarray(f32s), np.asarray(spreads)):
        if not np.all(np.isfinite(f32)):
            out.append("diverged")
        elif np.all(f32 <= agree_tol):
            out.append("agree")
        elif np.all(np.isfinite(spread)) and np.all(f32 <= spread_factor * spread):
            out.append("sensitivity")
        else:
            out.append("roundoff")
    return out


def perturbation_size(arrays):
    """The relative perturbation of the perturbed runs of a result (NaN if none)."""
    rows = _rows(arrays, "float64 perturbed")
    return float(np.asarray(arrays["variant_eps"])[rows[0]]) if len(rows) else float("nan")


def _list(values):
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _groups(horizons, verdict):
    """Runs of consecutive horizons with the same verdict: [(verdict, [T, ...], [k, ...]), ...]."""
    groups = []
    for k, (T, v) in enumerate(zip(horizons, verdict)):
        if groups and groups[-1][0] == v:
            groups[-1][1].append(T)
            groups[-1][2].append(k)
        else:
            groups.append((v, [T], [k]))
    return groups


def _percent(x):
    return f"{x:.0%}" if x >= 0.01 else f"{x:.1e}"


def headline(arrays):
    """One sentence: what the float32/float64 disagreement is, by horizon."""
    horizons = [int(h) for h in arrays["horizons"]]
    verdict = [str(v) for v in arrays["summary_verdict"]]
    at = {v: [T for T, w in zip(horizons, verdict) if w == v] for v in set(verdict)}
    if set(verdict) == {"agree"}:
        return "Float32 hypergradients are as good as float64's at every horizon measured here."
    parts = []
    if "agree" in at:
        parts.append(f"float32 is as good as float64 at T = {_list(at['agree'])}")
    if "roundoff" in at:
        parts.append(f"at T = {_list(at['roundoff'])} the float64 hypergradient hardly moves when its start "
                     "is perturbed, but float32 computations can be far from it: there float32 roundoff is "
                     "the issue")
    if "sensitivity" in at:
        parts.append(f"at T = {_list(at['sensitivity'])} roundoff is not the issue but sensitivity is: a "
                     "roundoff-sized perturbation of the start can change the float64 hypergradient as "
                     "much as float32 does")
    if "diverged" in at:
        parts.append(f"a lookahead diverged at T = {_list(at['diverged'])}")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def conclusion(arrays, smd_horizons=(100, 1000, 5000)):
    """A few sentences on what a result's numbers say, chosen from its verdicts (in order of
    the horizon), and what they imply for float32 SMD at ``smd_horizons`` (the offline
    archive's SMD horizons)."""
    horizons = [int(h) for h in arrays["horizons"]]
    verdict = [str(v) for v in arrays["summary_verdict"]]
    anyf = np.nanmax(np.asarray(arrays["summary_float32_any"]), axis=1)
    fewest = np.asarray(arrays["summary_float32_fewest"])
    any_loss = np.asarray(arrays["summary_float32_any_loss"])
    across = np.asarray(arrays["summary_float32_across"])
    spread = np.nanmax(np.asarray(arrays["summary_perturbed_max"]), axis=1)
    over = np.asarray(arrays["summary_perturbed_over"])
    linear = np.asarray(arrays["summary_linearity"])
    batch_low, batch_high = np.asarray(arrays["summary_batches_scaled"]).T
    n_pert = len(_rows(arrays, "float64 perturbed"))
    n_f32 = sum(len(_rows(arrays, kind)) for kind in FLOAT32_REFERENCE)
    n_seq = np.asarray(arrays["summary_float32_signed"]).shape[0]
    eps = perturbation_size(arrays)

    parts = []
    for kind, Ts, k in _groups(horizons, verdict):
        where = f"At T = {_list(Ts)}"
        if kind == "agree":
            parts.append(f"{where} all {n_f32} float32 computations agree with float64 to "
                         f"{anyf[k].max():.1e} (relative): precision does not matter there.")
        elif kind == "roundoff":
            smooth = bool(np.all(np.isfinite(linear[k])) and np.all(np.abs(np.log10(linear[k])) < np.log10(3)))
            parts.append(f"{where} perturbing the starting weights by {eps:.0e} (relative) changes the "
                         f"float64 hypergradient by at most {spread[k].max():.1e}"
                         + (", in proportion to the perturbation" if smooth else "")
                         + f", but the {n_f32} float32 computations, which differ only in roundoff, differ "
                         f"from float64 by {_percent(fewest[k].min())} to {_percent(anyf[k].max())} (the "
                         f"meta-objective by up to {_percent(any_loss[k].max())}): float64 is stable there, "
                         "and float32 roundoff, made at every step, sometimes sends the training on "
                         "another path that a perturbation of the start alone does not.")
        elif kind == "sensitivity":
            parts.append(f"{where} perturbing the starting weights by {eps:.0e} (relative) changes the "
                         f"float64 hypergradient by up to {_percent(spread[k].max())} ({int(over[k].max())} "
                         f"of {n_pert} perturbations by more than {AGREE_TOL:.0%}), and the float32 "
                         f"computations differ from float64 by {_percent(fewest[k].min())} to "
                         f"{_percent(anyf[k].max())}: roundoff is not the issue, sensitivity is, and a "
                         "single-trajectory hypergradient there is a noisy estimate in any precision.")
        else:
            parts.append(f"{where} a lookahead diverged, so nothing is compared there.")
    if n_seq >= 2:
        wide = [T for T in horizons if np.isfinite(across[horizons.index(T), 1])
                and across[horizons.index(T), 1] > 10 * max(across[horizons.index(T), 0], 1e-12)
                and across[horizons.index(T), 1] > AGREE_TOL]
        if wide:
            k = [horizons.index(T) for T in wide]
            parts.append(f"On the {n_seq} minibatch sequences, float32's error at T = {_list(wide)} ranges from "
                         f"{_percent(across[k, 0].min())} to {_percent(across[k, 1].max())} of the "
                         "hypergradient's typical size: it is erratic, not a steady bias.")

    # What it implies for the offline experiment's float32 SMD, horizon by horizon.
    measured = [T for T in smd_horizons if T in horizons]
    if not measured:
        parts.append(f"This run measures none of the offline archive's SMD horizons (T = {_list(smd_horizons)}).")
        return " ".join(parts)
    clauses = []
    for kind, Ts, _ in _groups(measured, [verdict[horizons.index(T)] for T in measured]):
        k = [horizons.index(T) for T in Ts]
        noise = (f"changing the minibatches changes the float64 hypergradient by {_percent(batch_low[k].min())} "
                 f"to {_percent(batch_high[k].max())} of its typical size"
                 if np.all(np.isfinite(batch_high[k])) else "")
        if kind == "agree":
            clauses.append(f"at T = {_list(Ts)} it gets float64's hypergradients")
        elif kind == "roundoff":
            clauses.append(f"at T = {_list(Ts)} whether its hypergradients are right or off by up to "
                           f"{_percent(anyf[k].max())} depends on roundoff, where float64's are stable, so "
                           "float64 would help" + (f" ({noise})" if noise else ""))
        elif kind == "sensitivity":
            clauses.append(f"at T = {_list(Ts)} float64 would not make them more meaningful: a roundoff-sized "
                           f"change of the start can move even float64's by {_percent(spread[k].max())}"
                           + (f" and {noise}" if noise else "")
                           + ", so SMD follows a noisy direction there in any precision")
        else:
            clauses.append(f"at T = {_list(Ts)} the lookahead diverged")
    parts.append("For the offline archive's float32 SMD: " + "; ".join(clauses) + ".")
    return " ".join(parts)


def table_rows(arrays):
    """Per-horizon rows for the chapter's table (plain floats and strings; the larger of the two
    components' relative differences)."""
    rows = []
    for k, T in enumerate(np.asarray(arrays["horizons"])):
        def big(name):
            return float(np.max(np.asarray(arrays[name][k], dtype=float)))
        rows.append({"horizon": int(T), "float32": big("summary_float32"),
                     "float32_double": big("summary_float32_double"),
                     "float32_perturbed": big("summary_perturbed32_max"),
                     "float32_any": big("summary_float32_any"),
                     "float32_loss": float(arrays["summary_float32_loss"][k]),
                     "float32_any_loss": float(arrays["summary_float32_any_loss"][k]),
                     "float32_low": float(arrays["summary_float32_across"][k, 0]),
                     "float32_high": float(arrays["summary_float32_across"][k, 1]),
                     "perturbed": big("summary_perturbed_max"),
                     "perturbed_loss": float(arrays["summary_perturbed_loss_max"][k]),
                     "perturbed_over": int(arrays["summary_perturbed_over"][k]),
                     "linearity": big("summary_linearity"),
                     "batches_low": float(arrays["summary_batches_scaled"][k, 0]),
                     "batches_high": float(arrays["summary_batches_scaled"][k, 1]),
                     "rounded_loss": float(arrays["summary_rounded_loss"][k]),
                     "lost": float(arrays["summary_lost"][k]),
                     "verdict": str(arrays["summary_verdict"][k])})
    return rows


def markdown_table(arrays):
    """The per-horizon table in Markdown: relative differences to float64 (the larger of the
    two components), the meta-objective's, and the verdict."""
    def num(x):
        return "-" if not np.isfinite(x) else f"{x:.1e}"

    n_pert = len(_rows(arrays, "float64 perturbed"))
    lines = ["| horizon $T$ | float32 | float32, double backward | float32, start perturbed "
             f"| float64, start perturbed (runs over {AGREE_TOL:.0%}) | meta-objective: float32 (worst) "
             "| meta-objective: float64 with weights rounded to float32 "
             "| float32 on each minibatch sequence (min - max)* | float64 on other minibatches (min - max)* "
             "| verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table_rows(arrays):
        lines.append(f"| {r['horizon']} | {num(r['float32'])} | {num(r['float32_double'])} "
                     f"| {num(r['float32_perturbed'])} | {num(r['perturbed'])} ({r['perturbed_over']} of {n_pert}) "
                     f"| {num(r['float32_any_loss'])} | {num(r['rounded_loss'])} "
                     f"| {num(r['float32_low'])} - {num(r['float32_high'])} "
                     f"| {num(r['batches_low'])} - {num(r['batches_high'])} | {r['verdict']} |")
    lines.append("")
    lines.append("\\* relative to each component's typical size at that horizon (the root mean square "
                 "of the float64 hypergradients over the minibatch sequences).")
    return "\n".join(lines)


# ---------------------------------------------------------------- figures

def plot_relative_differences(arrays, title=None, floor=1e-17):
    """Relative difference to float64 vs horizon (log-log), one panel per component.

    Lines: float32 (markers: on other minibatch sequences, each against float64
    on the same sequence); the perturbed float64 runs (each a marker, the
    largest a line); float32 perturbed; the small perturbation; float64 on
    other minibatches (dotted, the scale of minibatch noise). Diverged runs
    are not drawn; an exact zero is drawn at ``floor``.
    """
    import matplotlib.pyplot as plt

    rel, _ = relative_differences(arrays)
    horizons = np.asarray(arrays["horizons"], dtype=np.float64)
    kinds = np.asarray(arrays["variant_kind"])
    eps = np.asarray(arrays["variant_eps"], dtype=np.float64)
    styles = {"float32": dict(color="C3", marker="o", lw=2),
              "float32 double backward": dict(color="C5", marker="D", lw=1.5, ls="--"),
              "float32 other minibatches": dict(color="C3", marker="o", lw=0, mfc="none"),
              "float64 perturbed": dict(color="C0", marker=".", lw=1.5),
              "float32 perturbed": dict(color="C1", marker="x", lw=1, ls="--"),
              "float64 small perturbation": dict(color="C2", marker="s", lw=1, ls="-."),
              "float64 other minibatches": dict(color="0.5", marker="^", lw=1, ls=":")}

    def label(kind):
        rows = np.flatnonzero(kinds == kind)
        if kind.startswith("float32 other"):
            return "float32, other minibatches"
        if kind == "float32 double backward":
            return "float32, double backward"
        if "perturb" in kind:
            return f"{kind.split()[0]}, start perturbed by {eps[rows[0]]:.0e}"
        return "float64, other minibatches (vs reference)" if "other" in kind else kind

    figure, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharey=True)
    for c, ax in enumerate(axes):
        for kind, style in styles.items():
            rows = np.flatnonzero(kinds == kind)
            if not len(rows):
                continue
            values = np.maximum(rel[rows][:, :, c], floor)     # (runs, H); NaN stays NaN
            top = _nanmax(values, values.shape[1:])
            ok = np.isfinite(top)
            if style.get("lw", 1):
                ax.plot(horizons[ok], top[ok], label=label(kind), **style)
            for n, row in enumerate(values if (len(rows) > 1 or not style.get("lw", 1)) else []):
                good = np.isfinite(row)
                ax.plot(horizons[good], row[good], ls="none", marker=style["marker"], color=style["color"],
                        mfc=style.get("mfc"), alpha=0.6,
                        label=label(kind) if (not style.get("lw", 1) and n == 0) else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(horizons, [str(int(h)) for h in horizons])
        ax.set_xticks([], minor=True)
        ax.set_xlabel("horizon T (steps)")
        ax.set_title(f"hypergradient component: {COMPONENTS[c]}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("relative difference to float64")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    if title:
        figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.13, 1, 1))
    return figure


__all__ = ["BASE", "SIZES", "EXTRA_PROFILES", "ARCHIVE_COMMAND", "KINDS", "config_for", "check_config",
           "variants", "perturb", "start_state", "measure", "rounded_weights_run", "run_experiment",
           "run_precision", "load_precision", "result_path", "archive_path", "reference_rows",
           "relative_differences", "summary", "verdicts", "headline", "conclusion", "table_rows", "markdown_table",
           "plot_relative_differences"]

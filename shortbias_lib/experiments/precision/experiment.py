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
  :func:`~shortbias_lib.engine.hvp.autograd_grad_hvp`: the same mathematics with the
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

A last run, :func:`~shortbias_lib.experiments.precision.variants.rounded_weights_run`, trains in float64 but rounds the
weights to float32 after every step (one more way to make float32-sized
roundoff) and counts the weight updates that this rounding loses entirely.

The variants and their computations are in :mod:`shortbias_lib.experiments.precision.variants`;
relative differences, their summary per horizon and a verdict (``"agree"``,
``"sensitivity"``, ``"roundoff"``) in :mod:`shortbias_lib.experiments.precision.analysis`,
whose :func:`~shortbias_lib.experiments.precision.analysis.conclusion` words them, so the
chapter's conclusion comes from the numbers; the figure in
:mod:`shortbias_lib.experiments.precision.figures`. This module holds the configuration and the
experiment; the entry point for the CLI and the chapter is :func:`run_precision`.
"""

import math
from pathlib import Path

import numpy as np
import torch

from ... import runs
from ...checks import check_counts, check_dtype, check_eval_chunk, check_horizons
from ...engine.hyperparams import Hyperparameters
from ...runs import matching_checkpoint, same_data
from ...engine.batches import StepBatches, derived_seed
from ...engine.warm_start import PAPER_MLP, seeded_warm_start, warm_arrays, warm_state
from .analysis import summary
from .variants import measure, rounded_weights_run, start_state, variants
from ...profiles import check_profile, pick
from ...engine.training import check_convention

CHAPTER = "hypergrad_precision"

# Shared by every profile: the paper's network, warm start and momentum (the offline
# experiment's), and the schedule at which the float32/float64 disagreement was first seen.
BASE = {
    "chapter": CHAPTER,
    **{key: PAPER_MLP[key] for key in ("sizes", "init_std", "momentum", "batch_size", "warm_steps",
                                       "warm_lr", "warm_momentum", "convention")},
    "warm_dtype": PAPER_MLP["dtype"],      # the warm start is the offline experiment's (float32)
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


def config_for(profile, seed=0):
    """The full configuration of a profile (what is saved with, and identifies, a result)."""
    check_profile(profile, extra=EXTRA_PROFILES)
    runs.check_seed(seed)
    config = dict(BASE)
    config.update(pick(profile, SIZES))
    return check_config(config)


def check_config(config):
    """Validate a configuration; returns it with tuples normalised."""
    config = dict(config)
    for key in ("horizons", "sizes"):
        config[key] = tuple(config[key])
    check_horizons(config["horizons"])
    check_counts(config, ("batch_size", "objective_examples", "eval_chunk"))
    check_counts(config, ("perturbed_runs", "perturbed_runs_float32", "batch_resamples", "warm_steps"), minimum=0)
    check_eval_chunk(config)
    if not (math.isfinite(config["perturbation"]) and config["perturbation"] > 0):
        raise ValueError(f"perturbation must be finite and > 0; got {config['perturbation']!r}")
    if not (math.isfinite(config["small_perturbation"]) and config["small_perturbation"] >= 0):
        raise ValueError(f"small_perturbation must be finite and >= 0; got {config['small_perturbation']!r}")
    if config["small_perturbation"] and config["perturbed_runs"] < 1:
        raise ValueError("small_perturbation needs perturbed_runs >= 1 (it scales the first direction)")
    check_dtype(config, "warm_dtype")
    # The schedule's own checks (alpha_0 > 0, beta > 0 to be learned in log space, K > 0).
    Hyperparameters(lr=float(config["alpha0"]), momentum=config["momentum"], beta=float(config["beta"]),
                    K=float(config["K"]), learn=("lr", "beta"), space="log")
    check_convention(config["convention"])
    return config


# ---------------------------------------------------------------- the experiment

def result_path(profile, seed, results=None):
    """Where :func:`run_precision` writes its result file."""
    return runs.result_path(CHAPTER, profile, seed, results)


def archive_path(seed=0):
    """The committed result of the ``archive`` profile (see :data:`ARCHIVE_COMMAND`)."""
    return runs.REPO_ROOT / ARCHIVE_DIR / f"{CHAPTER}_archive_seed{seed}.npz"


def run_experiment(config, train_data, path, *, profile="quick", seed=0, device="cpu", resume=True,
                   on_checkpoint=None, data_fingerprint=None):
    """Run (or resume) the measurement for ``config`` on ``train_data = (images, labels)``.

    Returns a :class:`runs.Result`. A finished file at ``path`` with the same
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

    def compute():
        with runs.cpu_settings(device, one_thread=True, flush_denormal=True):
            _run(config, train_data, path, profile, seed, device, resume, on_checkpoint, data_fingerprint)

    return _with_summary(runs.run_or_resume(path, config, compute, resume=resume, expected=_expected(config),
                                            same={"profile": profile, "seed": seed},
                                            reuse=same_data(data_fingerprint)))


def _expected(config):
    """The arrays the summary reads, with their shapes (those of a fresh measurement), so a
    file lacking one is a one-line error naming it (:func:`runs.check_arrays`), not a KeyError."""
    horizons = tuple(int(h) for h in config["horizons"])
    return {name: np.shape(value) for name, value in _fresh_arrays(variants(config), horizons).items()}


def _fresh_arrays(table, horizons):
    """The arrays of a measurement before any hypergradient: the variants and empty results."""
    V, H = len(table), len(horizons)
    return {"horizons": np.asarray(horizons),
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


def _run(config, train_data, path, profile, seed, device, resume, on_checkpoint, data_fingerprint):
    """Compute the hypergradients the partial checkpoint lacks (checkpointing after each),
    then the rounded-weights run, and write the finished file to ``path``."""
    partial = runs.partial_path(path)
    horizons = tuple(int(h) for h in config["horizons"])
    table = variants(config)
    V = len(table)
    # The data in the warm start's dtype, so that every variant sees the same values (float32
    # images are exact in float64).
    warm_dtype = getattr(torch, config["warm_dtype"])
    images, labels = train_data[0].to(device=device, dtype=warm_dtype), train_data[1].to(device)
    n_obj = int(config["objective_examples"])
    if n_obj > len(labels):
        raise ValueError(f"objective_examples must be <= the {len(labels)} training examples; got {n_obj}")
    arrays = _fresh_arrays(table, horizons)
    if resume:
        saved = matching_checkpoint(partial, config, profile, seed, data_fingerprint)
        if saved is not None:
            arrays.update(saved[0])
    else:
        partial.unlink(missing_ok=True)
    started = runs.provenance(profile, device, seed, **config)
    if data_fingerprint is not None:
        started["data_fingerprint"] = data_fingerprint

    save = runs.checkpoint_saver(partial, arrays, started, on_checkpoint)

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
            stream = StepBatches(images, labels, config["batch_size"], derived_seed(seed, 8, variant["batches"]))
            batches = _cast(stream, getattr(torch, variant["dtype"]))
            state = start_state(warm, variant, seed, device)
            loss, grad, bad, seconds = measure(state, hyper, batches, horizon, objectives[variant["dtype"]],
                                               config["convention"], path=variant["path"])
            arrays["meta_loss"][j, k], arrays["grad"][j, k] = loss, grad
            arrays["diverged_step"][j, k], arrays["seconds"][j, k] = bad, seconds
            arrays["done"][j, k] = True
            save(f"T={horizon}: {variant['kind']} ({j + 1}/{V})")

    if not bool(arrays["rounded_done"]):
        reference = _cast(StepBatches(images, labels, config["batch_size"], derived_seed(seed, 8, 0)), torch.float64)
        arrays["rounded_objective"], arrays["rounded_lost"] = rounded_weights_run(
            start_state(warm, table[0], seed, device), hyper, reference, horizons, objectives["float64"],
            config["convention"])
        arrays["rounded_done"] = np.asarray(True)
        save("float64 with weights rounded to float32")

    arrays.update(summary(arrays))
    runs.save_result(path, arrays, dict(started, stage="finished", finished_utc=runs.utc_now()))


def _with_summary(found):
    """A result ``(arrays, meta)`` read from its file, with its summary recomputed by this version
    of the code (:func:`~shortbias_lib.experiments.precision.analysis.summary`), as a :class:`runs.Result`."""
    arrays, meta = found
    arrays.update(summary(arrays))
    return runs.Result(arrays, meta)


def _cast(batches, dtype):
    """``batches(t)`` with its images cast to ``dtype`` (the data stay in one copy)."""
    def typed(t):
        x, y = batches(t)
        return x.to(dtype), y
    return typed


def run_precision(profile="quick", *, device="auto", seed=0, data_root=None, results=None, resume=True,
                  path=None):
    """CLI/chapter entry point: the precision measurement of ``profile``; returns a :class:`runs.Result`.

    Writes ``results/hypergrad_precision_{profile}_seed{seed}.npz`` (or
    ``path``), reusing a finished file of the same configuration and resuming
    a partial one when ``resume``.
    """
    from ...data import load

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
    runs.check_arrays(path, arrays, _expected(meta["config"]))
    if meta.get("stage") == "finished":
        return _with_summary((arrays, meta))   # the analysis of this version of the code
    return runs.Result(arrays, meta)


__all__ = ["BASE", "SIZES", "EXTRA_PROFILES", "ARCHIVE_COMMAND", "config_for", "check_config",
           "run_experiment", "run_precision", "load_precision", "result_path", "archive_path"]

"""Offline meta-optimization of an inverse-time decay schedule on MNIST (Section 3.2).

The schedule ``alpha_t = alpha_0 / (1 + t/K)^beta`` with fixed ``mu`` is
trained from one warm-started MLP for many random ``(alpha_0, beta)``. The
meta-objective of horizon ``T`` is the training loss after ``T`` steps. The
schedule does not depend on ``T``, so **one run of ``max(T)`` steps per sample
passes through every horizon**: the objective of every horizon is recorded
on the way (:func:`offline_training.horizon_objectives`) instead of training once per horizon.
All samples use the same minibatch sequence (common random numbers), so the
surfaces compare schedules, not batch luck.

From these samples the experiment draws the meta-objective surfaces (Figure 5,
Gaussian kernel smoothing of log loss on a grid: :mod:`offline_surface`), runs SMD
with exact forward-mode hypergradients from a few start points (:mod:`offline_smd`),
trains each horizon's best schedule for the longest horizon (Figure 6) and checks
the paper's two headline claims. This module runs the stages in order; its pieces
live in ``offline_config`` (settings), ``offline_design`` (the sampled schedules),
``offline_training`` (batched training), ``offline_surface`` and ``offline_smd``.

Results are checkpointed atomically after every chunk of samples and every
few SMD meta steps, so an interrupted run resumes without losing finished
work; the entry point for the CLI and the chapter is :func:`run_offline`.
"""

from pathlib import Path

import numpy as np
import torch

from . import locks, runs
from .offline_config import (ARCHIVE_COMMAND, ARCHIVE_DIR, ARCHIVE_GPU_COMMANDS, BASE, CHAPTER,  # noqa: F401
                             EXTRA_PROFILES, PAPER_HORIZONS, SIZES, check_config, config_for)
from .offline_design import derived_seed, refinement_samples, sample_hyperparameters
from .offline_smd import smd_trajectory
from .progress import progress
from .offline_surface import add_summary, best_per_horizon, bootstrap_optima, sample_run_steps, surface_optima
from .batches import StepBatches
from .models import batched_loss, mlp_apply
from .offline_training import horizon_objectives, seeded_warm_start, train_curves, warm_arrays, warm_state
from .schedules import InverseTime


def result_path(profile, seed, results=None):
    """Where :func:`run_offline` writes its result file."""
    return runs.results_dir(results) / f"offline_mnist_{profile}_seed{seed}.npz"


def _load_same(path, config, profile, seed, data_fingerprint=None):
    """A result file at ``path`` made with this configuration, profile and seed (and, when both
    record one, from the same data: ``data_fingerprint``), else ``None``."""
    found = runs.load_matching(path, config, same={"profile": profile, "seed": seed})
    if found is not None and data_fingerprint is not None:
        recorded = found[1].get("data_fingerprint")
        if recorded is not None and recorded != json_roundtrip(data_fingerprint):
            return None
    return found


def run_experiment(config, train_data, test_data, path, *, profile="quick", seed=0, device="cpu",
                   resume=True, on_checkpoint=None, show_progress=True, data_fingerprint=None,
                   stop_before_smd=False):
    """Run (or resume) the whole offline experiment for ``config``; returns ``(arrays, meta)``.

    ``train_data``/``test_data`` are ``(images, labels)``. A finished file
    at ``path`` with the same configuration is reused when ``resume``; a
    partial checkpoint (``path`` with suffix ``.partial.npz``) is continued.
    ``on_checkpoint(stage)`` is called after every checkpoint (tests use it
    to interrupt a run). ``data_fingerprint`` (e.g. the data sets' fingerprints) is
    recorded in the provenance; a file recorded from other data is not reused.
    ``stop_before_smd`` returns after Figure 6, leaving the partial checkpoint for a later
    run (on another device) to finish; the finished file's ``earlier_legs`` records each leg.
    """
    config = check_config(config)
    path = Path(path)
    device = torch.device(device)
    if resume:
        found = _load_same(path, config, profile, seed, data_fingerprint)
        if found is not None:
            return found
    # Tiny learning rates (large beta) push weights' updates into subnormal numbers, which
    # are very slow on CPUs: flush them to zero during the run (no effect above 1e-38).
    torch.set_flush_denormal(True)
    try:
        with locks.run_lock(path):  # a second run of this file refuses instead of mixing checkpoints
            return _run_experiment(config, train_data, test_data, path, profile, seed, device,
                                   resume, on_checkpoint, show_progress, data_fingerprint,
                                   stop_before_smd)
    finally:
        torch.set_flush_denormal(False)


def _run_experiment(config, train_data, test_data, path, profile, seed, device, resume,
                    on_checkpoint, show_progress, data_fingerprint, stop_before_smd):
    partial = path.with_suffix(".partial.npz")
    dtype = getattr(torch, config["dtype"])
    mu, conv = config["momentum"], config["convention"]
    horizons, K = tuple(int(h) for h in config["horizons"]), float(config["K"])
    S, H = int(config["samples"]), len(horizons)

    images = train_data[0].to(device=device, dtype=dtype)
    labels = train_data[1].to(device)
    test = (test_data[0].to(device=device, dtype=dtype), test_data[1].to(device))
    n_obj = int(config["objective_examples"])
    if n_obj > len(labels):
        raise ValueError(f"objective_examples must be <= the {len(labels)} training examples; got {n_obj}")
    objective = (images[:n_obj], labels[:n_obj])
    chunk_eval = int(config["eval_chunk"])
    # SMD differentiates the loss on the first ``smd_objective_examples`` of these examples.
    objective_batches = [(objective[0][s:s + chunk_eval], objective[1][s:s + chunk_eval])
                         for s in range(0, min(n_obj, int(config["smd_objective_examples"])), chunk_eval)]

    ranges = (config["log10_alpha0_range"], config["log10_beta_range"])
    log_a, log_b = sample_hyperparameters(S, seed, *ranges, sampling=config["sampling"])
    arrays = {"log10_alpha0": log_a, "log10_beta": log_b, "horizons": np.asarray(horizons),
              "objective": np.full((S, H), np.nan), "diverged_step": np.full(S, -1),
              "run_steps": np.full(S, max(horizons)), "samples_done": np.asarray(0),
              "refined_horizons": np.asarray(0)}
    smd_starts = [(h, b) for h in config["smd_horizons"] for b in config["smd_betas"]]
    earlier_legs = []  # provenance of the runs this one resumes (device, commit, stage reached)
    if resume:
        saved = _load_same(partial, config, profile, seed, data_fingerprint)
        if saved is not None:
            arrays.update(saved[0])
            earlier_legs = saved[1].get("earlier_legs", []) + [
                {name: saved[1].get(name) for name in ("device", "git_commit", "torch", "time_utc", "stage")}]
    else:
        partial.unlink(missing_ok=True)

    started = runs.provenance(profile, device, seed, **config)  # the commit that computes it
    if earlier_legs:
        started["earlier_legs"] = earlier_legs
    if data_fingerprint is not None:
        started["data_fingerprint"] = data_fingerprint

    def save(stage):
        meta = dict(started, stage=stage)
        runs.save_result(partial, arrays, meta)
        if on_checkpoint is not None:
            on_checkpoint(stage)

    # 1. warm start (saved, so that a resumed run continues from the very same weights).
    if "warm_params_0" not in arrays:
        warm = seeded_warm_start(config, seed, images, labels, dtype, device)
        arrays.update(warm_arrays(warm))
        arrays["warm_objective"] = np.asarray(batched_loss(
            mlp_apply, tuple(p.unsqueeze(0) for p in warm.params), *objective, chunk_eval, dtype=torch.float64).item())
        save("warm start")
    state = warm_state(arrays, device)

    # 2. the sweep: chunks of samples, one run of max(horizons) steps each.
    sweep_batches = StepBatches(images, labels, config["batch_size"], derived_seed(seed, 2))
    chunk = int(config["chunk"])
    done = int(arrays["samples_done"])
    bar = progress(total=S, initial=done, desc="offline samples", disable=None if show_progress else True)
    while done < S:
        a, b = done, min(done + chunk, S)
        alpha0 = torch.as_tensor(10.0 ** arrays["log10_alpha0"][a:b])
        beta = torch.as_tensor(10.0 ** arrays["log10_beta"][a:b])
        values, bad = horizon_objectives(state, alpha0, beta, K, horizons, sweep_batches, objective,
                                         mu, conv, chunk_eval)
        arrays["objective"][a:b] = values
        arrays["diverged_step"][a:b] = bad
        done = b
        arrays["samples_done"] = np.asarray(done)
        bar.update(b - a)
        save(f"samples {done}/{S}")
    bar.close()

    # 2b. refinement: samples around each horizon's optimum on the first stage's surface,
    # each trained only as long as its horizon (the shorter horizons' values come free).
    refine = int(config["refine_per_horizon"])
    if refine and "refine_centers" not in arrays:
        first_stage = {name: arrays[name][:S] for name in
                       ("log10_alpha0", "log10_beta", "objective", "run_steps")}
        first_stage["warm_objective"] = arrays["warm_objective"]
        arrays["refine_centers"] = surface_optima(first_stage, config)[0]
    while refine and int(arrays["refined_horizons"]) < H:
        k = int(arrays["refined_horizons"])
        la, lb = refinement_samples(refine, seed, k, arrays["refine_centers"][k],
                                    config["refine_halfwidth"], *ranges)
        values, bad = horizon_objectives(state, torch.as_tensor(10.0 ** la), torch.as_tensor(10.0 ** lb),
                                         K, horizons[:k + 1], sweep_batches, objective, mu, conv, chunk_eval)
        padded = np.full((refine, H), np.nan)
        padded[:, :k + 1] = values
        for name, value in (("log10_alpha0", la), ("log10_beta", lb), ("objective", padded),
                            ("diverged_step", bad), ("run_steps", np.full(refine, horizons[k]))):
            arrays[name] = np.concatenate([arrays[name], value])
        arrays["refined_horizons"] = np.asarray(k + 1)
        save(f"refinement {k + 1}/{H}")

    best = best_per_horizon(np.where(sample_run_steps(arrays, config)[:, None] >= np.asarray(horizons)[None, :],
                                     arrays["objective"], np.nan))
    arrays["best_index"] = best
    if "surface_log10" not in arrays:
        arrays["surface_log10"], arrays["surface_log_loss"] = surface_optima(arrays, config)
        arrays["bootstrap_log10"], arrays["bootstrap_log_loss"] = bootstrap_optima(
            arrays, config, config["bootstrap_reps"], seed)
        save("surface optima and bootstrap")

    # 3. Figure 6: each horizon's best sample and its surface optimum, trained for the
    # longest horizon (same batches), in one batched run.
    if "curve_steps" not in arrays:
        chosen = np.where(best >= 0, best, 0)
        log_a = np.concatenate([arrays["log10_alpha0"][chosen], arrays["surface_log10"][:, 0]])
        log_b = np.concatenate([arrays["log10_beta"][chosen], arrays["surface_log10"][:, 1]])
        curves = train_curves(state, InverseTime(torch.as_tensor(10.0 ** log_a), torch.as_tensor(10.0 ** log_b), K),
                              max(horizons), int(config["curve_every"]), sweep_batches, objective, test,
                              mu, conv, chunk_eval)
        for name, value in curves.items():
            arrays[f"curve_{name}"] = value[:H] if name != "steps" else value
            if name != "steps":
                arrays[f"surface_curve_{name}"] = value[H:]
        save("figure 6 curves")
    if stop_before_smd:
        return arrays, json_roundtrip(dict(started, stage="figure 6 curves"))

    # 4. SMD trajectories from each start point, on each SMD horizon.
    for j, (h, beta0) in enumerate(smd_starts):
        key = f"smd_{j}"
        steps = int(config["smd_meta_steps"][config["smd_horizons"].index(h)])
        previous = ({name: arrays[f"{key}_{name}"] for name in
                     ("u", "meta_loss", "hypergrad", "adam_m", "adam_s", "adam_t")}
                    if f"{key}_u" in arrays else None)
        if previous is not None and len(previous["meta_loss"]) >= steps:
            continue

        def checkpoint(smd_state, key=key, h=h, beta0=beta0):
            for name, value in smd_state.items():
                arrays[f"{key}_{name}"] = value
            save(f"SMD T={h} beta0={beta0:g}: {len(smd_state['meta_loss'])} meta steps")

        bar = progress(total=steps, initial=0 if previous is None else len(previous["meta_loss"]),
                            desc=f"SMD T={h}, beta0={beta0:g}", disable=None if show_progress else True)
        # One unbatched network: its small operations gain nothing from several CPU
        # threads and slow down badly when the cores are shared, so SMD uses one.
        threads = torch.get_num_threads()
        if device.type == "cpu":
            torch.set_num_threads(1)
        try:
            smd_trajectory(state, config["smd_alpha0"], beta0, K, h, steps,
                           StepBatches(images, labels, config["batch_size"], derived_seed(seed, 4, j)),
                           objective_batches, mu, config["smd_meta_lr"], config["smd_clip"], conv,
                           resume=previous, checkpoint=checkpoint,
                           checkpoint_every=config["smd_checkpoint_every"], progress=bar)
        finally:
            torch.set_num_threads(threads)
        bar.close()

    add_summary(arrays, config)
    meta = dict(started, stage="finished", finished_utc=runs.utc_now())
    runs.save_result(path, arrays, meta)
    partial.unlink(missing_ok=True)
    return arrays, json_roundtrip(meta)


def json_roundtrip(meta):
    """``meta`` as it reads back from a file (tuples become lists)."""
    import json

    return json.loads(json.dumps(meta, sort_keys=True, default=str))


def run_offline(profile="quick", *, device="auto", seed=0, data_root=None, results=None, resume=True,
                path=None, show_progress=True, stop_before_smd=False):
    """CLI/chapter entry point: the offline experiment of ``profile``; returns ``(arrays, meta)``.

    Writes ``results/offline_mnist_{profile}_seed{seed}.npz`` (or ``path``),
    reusing a finished file of the same configuration and data and resuming
    a partial one when ``resume``.
    """
    from .data import load

    config = config_for(profile, seed)
    device = runs.resolve_device(device)
    path = Path(path) if path is not None else result_path(profile, seed, results)
    # The data come first (seconds), so that a result made from other data is not reused.
    train_set = load("mnist", train=True, root=data_root, limit=config["train_limit"])
    test_set = load("mnist", train=False, root=data_root, limit=config["test_limit"])
    arrays, meta = run_experiment(config, (train_set.images, train_set.labels),
                                  (test_set.images, test_set.labels), path, profile=profile,
                                  seed=seed, device=device, resume=resume, show_progress=show_progress,
                                  data_fingerprint=[train_set.fingerprint, test_set.fingerprint],
                                  stop_before_smd=stop_before_smd)
    return arrays, meta


def load_offline(path):
    """Read a finished result file written by :func:`run_offline` (for redrawing a longer run),
    with its summary (:func:`offline_surface.add_summary`) recomputed from the raw arrays."""
    arrays, meta = runs.load_result(path)
    if meta.get("config", {}).get("chapter") != CHAPTER:
        raise ValueError(f"path must be a result file of the offline experiment; {path} is not")
    add_summary(arrays, meta["config"])
    return arrays, meta


def refresh_summary(path):
    """Rewrite a finished result file with its summary recomputed by the current code
    (raw arrays untouched; the commit that did it is recorded as ``summary_commit``)."""
    arrays, meta = load_offline(path)
    meta["summary_commit"] = runs.git_commit()
    runs.save_result(path, arrays, meta)
    return arrays, meta


def archive_path(seed=0, profile="archive"):
    """The committed result of an archived profile (``archive`` or ``archive_gpu``: the paper's
    time scale)."""
    if profile not in EXTRA_PROFILES:
        raise ValueError(f"profile must be one of {EXTRA_PROFILES}; got {profile!r}")
    return runs.REPO_ROOT / ARCHIVE_DIR / f"{CHAPTER}_{profile}_seed{seed}.npz"


__all__ = ["run_experiment", "run_offline", "load_offline", "refresh_summary", "result_path", "archive_path",
           "json_roundtrip"]

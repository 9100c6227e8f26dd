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
the paper's two headline claims. This module runs the stages in order (warm start,
sweep, refinement, surface optima, Figure 6 curves, SMD: one function each); its pieces
live in ``offline_config`` (settings), ``offline_design`` (the sampled schedules),
``offline_training`` (batched training), ``offline_surface`` and ``offline_smd``.

Results are checkpointed atomically after every chunk of samples and every
few SMD meta steps, so an interrupted run resumes without losing finished
work; the entry point for the CLI and the chapter is :func:`run_offline`.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ... import runs
from .config import ARCHIVE_DIR, CHAPTER, EXTRA_PROFILES, check_config, config_for
from .design import refinement_samples, sample_hyperparameters
from .smd import checkpointing, smd_hyperparameters, smd_meta_lr, smd_trajectory
from ...engine.batched_offline_smd import smd_trajectories_batched
from ...engine.meta_optim import rate_at
from .surface import add_summary, best_per_horizon, bootstrap_optima, sample_run_steps, surface_optima
from .training import horizon_objectives, train_curves
from ...progress import progress
from ...engine.batches import StepBatches, derived_seed
from ...engine.warm_start import seeded_warm_start, warm_arrays, warm_state
from ...engine.models import batched_loss, mlp_apply
from ...engine.schedules import InverseTime

# The settings in which a finished file may differ from a configuration that continues it
# (:func:`continued_smd`): how long SMD runs and how its meta learning rate anneals.
SMD_LENGTH_KEYS = ("smd_meta_steps", "smd_anneal_from", "smd_meta_lr_final")


def result_path(profile, seed, results=None):
    """Where :func:`run_offline` writes its result file."""
    return runs.result_path(CHAPTER, profile, seed, results)


def run_experiment(config, train_data, test_data, path, *, profile="quick", seed=0, device="cpu",
                   resume=True, on_checkpoint=None, show_progress=True, data_fingerprint=None,
                   stop_before_smd=False):
    """Run (or resume) the whole offline experiment for ``config``; returns a :class:`runs.Result`.

    ``train_data``/``test_data`` are ``(images, labels)``. A finished file
    at ``path`` with the same configuration is reused when ``resume``; a
    partial checkpoint (``path`` with suffix ``.partial.npz``) is continued.
    ``on_checkpoint(stage)`` is called after every checkpoint (tests use it
    to interrupt a run). ``data_fingerprint`` (e.g. the data sets' fingerprints) is
    recorded in the provenance; a file recorded from other data is not reused.
    ``stop_before_smd`` returns after Figure 6, leaving the partial checkpoint for a later
    run (on another device) to finish; the finished file's ``earlier_legs`` records each leg.
    A finished file whose SMD this configuration only runs longer (:func:`continued_smd`) is
    continued: its stages are kept and each SMD trajectory resumes where it ended.
    """
    config = check_config(config)
    path = Path(path)
    device = torch.device(device)

    def compute():
        # Tiny learning rates (large beta) push weights' updates into subnormal numbers.
        with runs.cpu_settings(device, flush_denormal=True):
            setup = _prepare(config, train_data, test_data, seed, device, show_progress)
            return _run_stages(setup, path, profile, resume, on_checkpoint, data_fingerprint, stop_before_smd)

    return runs.run_or_resume(path, config, compute, resume=resume, same={"profile": profile, "seed": seed},
                              expected=finished_expected(config), reuse=runs.same_data(data_fingerprint))


def finished_expected(config):
    """The raw arrays of a finished file (what :func:`add_summary` and the chapter read) with
    their shapes, so a file lacking one is a one-line error naming it (:func:`runs.check_arrays`),
    not a KeyError. Samples (refined ones appended) and SMD steps vary in number: ``None``."""
    H = len(config["horizons"])
    expected = {"log10_alpha0": (None,), "log10_beta": (None,), "horizons": (H,), "objective": (None, H),
                "diverged_step": (None,), "run_steps": (None,), "best_index": (H,), "warm_objective": (),
                "surface_log10": (H, 2), "surface_log_loss": (H,), "bootstrap_log10": (None, H, 2),
                "bootstrap_log_loss": (None, H), "curve_steps": (None,)}
    for curves in ("curve", "surface_curve"):
        expected.update({f"{curves}_{name}": (H, None) for name in ("lr", "train_loss", "train_error", "test_error")})
    for j in range(len(config["smd_horizons"]) * len(config["smd_betas"])):
        expected.update({f"smd_{j}_u": (None, 2), f"smd_{j}_meta_loss": (None,), f"smd_{j}_hypergrad": (None, 2)})
    return expected


def continued_smd(path, config, profile, seed, data_fingerprint=None):
    """The finished file ``path`` as ``(arrays, meta)`` if ``config`` only runs its SMD longer,
    else ``None``: same profile, seed, data and settings except :data:`SMD_LENGTH_KEYS`, no
    trajectory shortened, and each trajectory's meta learning rates so far unchanged (so that
    continuing it gives what one run of ``config`` gives)."""
    path = Path(path)
    if not path.exists():
        return None
    arrays, meta = runs.load_result(path)
    if meta.get("stage") != "finished" or not runs.same_data(data_fingerprint)(meta):
        return None
    if (meta.get("profile"), meta.get("seed")) != (profile, seed):
        return None
    old, new = meta.get("config", {}), runs.json_ready(config)
    if {k: v for k, v in old.items() if k not in SMD_LENGTH_KEYS} != \
            {k: v for k, v in new.items() if k not in SMD_LENGTH_KEYS}:
        return None
    old = check_config(old)  # an older file without annealing gets its constant meta learning rate
    for h, done, steps in zip(config["smd_horizons"], old["smd_meta_steps"], config["smd_meta_steps"]):
        before, after = smd_meta_lr(old, h), smd_meta_lr(config, h)
        if done > steps or [rate_at(before, m) for m in range(done)] != [rate_at(after, m) for m in range(done)]:
            return None
    return arrays, meta



@dataclass(frozen=True)
class _Setup:
    """What every stage of one run reads: its settings, seed and device, the data on the device
    (``train`` and ``test`` as ``(images, labels)``, ``objective`` the meta-objective's examples)
    and the one minibatch sequence of the sweep, the refinement and Figure 6."""

    config: dict
    seed: int
    device: torch.device
    train: tuple
    test: tuple
    objective: tuple
    sweep_batches: StepBatches
    show_progress: bool

    @property
    def horizons(self):
        return tuple(int(h) for h in self.config["horizons"])

    def bar(self, total, initial, desc):
        """A progress bar, hidden unless ``show_progress``."""
        return progress(total=total, initial=initial, desc=desc, disable=None if self.show_progress else True)


def _prepare(config, train_data, test_data, seed, device, show_progress):
    """The run's :class:`_Setup`: the data moved to ``device`` in the configured dtype."""
    dtype = getattr(torch, config["dtype"])
    images = train_data[0].to(device=device, dtype=dtype)
    labels = train_data[1].to(device)
    test = (test_data[0].to(device=device, dtype=dtype), test_data[1].to(device))
    n_obj = int(config["objective_examples"])
    if n_obj > len(labels):
        raise ValueError(f"objective_examples must be <= the {len(labels)} training examples; got {n_obj}")
    return _Setup(config, seed, device, (images, labels), test, (images[:n_obj], labels[:n_obj]),
                  StepBatches(images, labels, config["batch_size"], derived_seed(seed, 2)), show_progress)


def _fresh_arrays(setup):
    """The arrays of a run before any stage: the sampled schedules and empty results."""
    config, horizons = setup.config, setup.horizons
    S, H = int(config["samples"]), len(horizons)
    log_a, log_b = sample_hyperparameters(S, setup.seed, config["log10_alpha0_range"], config["log10_beta_range"],
                                          sampling=config["sampling"])
    return {"log10_alpha0": log_a, "log10_beta": log_b, "horizons": np.asarray(horizons),
            "objective": np.full((S, H), np.nan), "diverged_step": np.full(S, -1),
            "run_steps": np.full(S, max(horizons)), "samples_done": np.asarray(0),
            "refined_horizons": np.asarray(0)}


def _run_stages(setup, path, profile, resume, on_checkpoint, data_fingerprint, stop_before_smd):
    """Run the stages the partial checkpoint lacks (checkpointing after each), then write the
    finished file to ``path``; a first leg (``stop_before_smd``) writes none and returns its
    partial :class:`~shortbias_lib.runs.Result` instead."""
    config, partial = setup.config, runs.partial_path(path)
    arrays = _fresh_arrays(setup)
    earlier_legs, corrections = [], []  # provenance of the runs this one resumes, and its corrections
    if resume:
        saved = runs.matching_checkpoint(partial, config, profile, setup.seed, data_fingerprint)
        if saved is None:
            saved = continued_smd(path, config, profile, setup.seed, data_fingerprint)
        if saved is not None:
            arrays.update(saved[0])
            reached = saved[1].get("stage")
            if reached == "finished":
                reached = "SMD " + "/".join(str(m) for m in saved[1]["config"]["smd_meta_steps"]) + " meta steps"
            earlier_legs = runs.legs_so_far(dict(saved[1], stage=reached))
            corrections = saved[1].get("provenance_corrections", [])
    else:
        partial.unlink(missing_ok=True)
    started = runs.provenance(profile, setup.device, setup.seed, **config)  # the commit that computes it
    if earlier_legs:
        started["earlier_legs"] = earlier_legs
    if corrections:
        started["provenance_corrections"] = corrections
    if data_fingerprint is not None:
        started["data_fingerprint"] = data_fingerprint

    save = runs.checkpoint_saver(partial, arrays, started, on_checkpoint, leg="offline")

    state = _warm_start(setup, arrays, save)
    _sweep(setup, state, arrays, save)
    _refine(setup, state, arrays, save)
    _surface(setup, arrays, save)
    _figure6_curves(setup, state, arrays, save)
    if stop_before_smd:
        return runs.Result(arrays, runs.json_ready(dict(started, stage="figure 6 curves")))
    _smd(setup, state, arrays, save)
    add_summary(arrays, config)
    runs.save_result(path, arrays, dict(started, stage="finished", finished_utc=runs.utc_now()))


# ---------------------------------------------------------------- the stages (each skips what is saved)

def _warm_start(setup, arrays, save):
    """Stage 1: the warm start (saved, so that a resumed run continues from the very same weights)."""
    if "warm_params_0" not in arrays:
        images, labels = setup.train
        warm = seeded_warm_start(setup.config, setup.seed, images, labels, images.dtype, setup.device)
        arrays.update(warm_arrays(warm))
        arrays["warm_objective"] = np.asarray(batched_loss(mlp_apply, tuple(p.unsqueeze(0) for p in warm.params),
                                                           *setup.objective, int(setup.config["eval_chunk"]),
                                                           dtype=torch.float64).item())
        save("warm start")
    return warm_state(arrays, setup.device)


def _sweep(setup, state, arrays, save):
    """Stage 2: the sweep, in chunks of samples, one run of ``max(horizons)`` steps each."""
    config = setup.config
    S, chunk = int(config["samples"]), int(config["chunk"])
    done = int(arrays["samples_done"])
    bar = setup.bar(S, done, "offline samples")
    while done < S:
        a, b = done, min(done + chunk, S)
        alpha0 = torch.as_tensor(10.0 ** arrays["log10_alpha0"][a:b])
        beta = torch.as_tensor(10.0 ** arrays["log10_beta"][a:b])
        values, bad = horizon_objectives(state, alpha0, beta, float(config["K"]), setup.horizons,
                                         setup.sweep_batches, setup.objective, config["momentum"],
                                         config["convention"], int(config["eval_chunk"]))
        arrays["objective"][a:b] = values
        arrays["diverged_step"][a:b] = bad
        done = b
        arrays["samples_done"] = np.asarray(done)
        bar.update(b - a)
        save(f"samples {done}/{S}")
    bar.close()


def _refine(setup, state, arrays, save):
    """Stage 2b: samples around each horizon's optimum on the first stage's surface, each
    trained only as long as its horizon (the shorter horizons' values come free)."""
    config, horizons = setup.config, setup.horizons
    S, H, refine = int(config["samples"]), len(horizons), int(config["refine_per_horizon"])
    if refine and "refine_centers" not in arrays:
        first_stage = {name: arrays[name][:S] for name in
                       ("log10_alpha0", "log10_beta", "objective", "run_steps")}
        first_stage["warm_objective"] = arrays["warm_objective"]
        arrays["refine_centers"] = surface_optima(first_stage, config)[0]
    while refine and int(arrays["refined_horizons"]) < H:
        k = int(arrays["refined_horizons"])
        la, lb = refinement_samples(refine, setup.seed, k, arrays["refine_centers"][k], config["refine_halfwidth"],
                                    config["log10_alpha0_range"], config["log10_beta_range"])
        values, bad = horizon_objectives(state, torch.as_tensor(10.0 ** la), torch.as_tensor(10.0 ** lb),
                                         float(config["K"]), horizons[:k + 1], setup.sweep_batches, setup.objective,
                                         config["momentum"], config["convention"], int(config["eval_chunk"]))
        padded = np.full((refine, H), np.nan)
        padded[:, :k + 1] = values
        for name, value in (("log10_alpha0", la), ("log10_beta", lb), ("objective", padded),
                            ("diverged_step", bad), ("run_steps", np.full(refine, horizons[k]))):
            arrays[name] = np.concatenate([arrays[name], value])
        arrays["refined_horizons"] = np.asarray(k + 1)
        save(f"refinement {k + 1}/{H}")


def _surface(setup, arrays, save):
    """Each horizon's best sample (among those run that long), and the smoothed surfaces'
    optima with their bootstrap (saved once)."""
    config, horizons = setup.config, np.asarray(setup.horizons)
    arrays["best_index"] = best_per_horizon(
        np.where(sample_run_steps(arrays, config)[:, None] >= horizons[None, :], arrays["objective"], np.nan))
    if "surface_log10" not in arrays:
        arrays["surface_log10"], arrays["surface_log_loss"] = surface_optima(arrays, config)
        arrays["bootstrap_log10"], arrays["bootstrap_log_loss"] = bootstrap_optima(
            arrays, config, config["bootstrap_reps"], setup.seed)
        save("surface optima and bootstrap")


def _figure6_curves(setup, state, arrays, save):
    """Stage 3, Figure 6: each horizon's best sample and its surface optimum, trained for the
    longest horizon (same batches), in one batched run."""
    if "curve_steps" in arrays:
        return
    config, H, best = setup.config, len(setup.horizons), arrays["best_index"]
    chosen = np.where(best >= 0, best, 0)
    log_a = np.concatenate([arrays["log10_alpha0"][chosen], arrays["surface_log10"][:, 0]])
    log_b = np.concatenate([arrays["log10_beta"][chosen], arrays["surface_log10"][:, 1]])
    schedules = InverseTime(torch.as_tensor(10.0 ** log_a), torch.as_tensor(10.0 ** log_b), float(config["K"]))
    curves = train_curves(state, schedules, max(setup.horizons), int(config["curve_every"]), setup.sweep_batches,
                          setup.objective, setup.test, config["momentum"], config["convention"],
                          int(config["eval_chunk"]))
    for name, value in curves.items():
        arrays[f"curve_{name}"] = value[:H] if name != "steps" else value
        if name != "steps":
            arrays[f"surface_curve_{name}"] = value[H:]
    save("figure 6 curves")


def _smd(setup, state, arrays, save):
    """Stage 4: SMD trajectories from each start point on each SMD horizon, each resumed from
    its last checkpoint. On a GPU the start points of one horizon advance together
    (:func:`~shortbias_lib.engine.batched_offline_smd.smd_trajectories_batched`, equal to the
    separate runs up to rounding) when they stand at the same meta step; on the CPU, and for
    starts resumed at different meta steps, each runs alone (:func:`smd_trajectory`), so the
    CPU-archived paths stay bit for bit what they were."""
    config, objective = setup.config, setup.objective
    chunk = int(config["eval_chunk"])
    # SMD differentiates the loss on the first ``smd_objective_examples`` of the objective's examples.
    objective_batches = [(objective[0][s:s + chunk], objective[1][s:s + chunk]) for s in
                         range(0, min(int(config["objective_examples"]), int(config["smd_objective_examples"])),
                               chunk)]
    betas = list(config["smd_betas"])
    for k, h in enumerate(config["smd_horizons"]):
        steps = int(config["smd_meta_steps"][k])
        starts = [_SMDStart(config, arrays, k * len(betas) + b, h, beta0, steps) for b, beta0 in enumerate(betas)]
        starts = [start for start in starts if start.done < steps]
        if not starts:
            continue
        if batch_smd_starts(setup.device) and len({start.done for start in starts}) == 1:
            _smd_together(setup, state, starts, objective_batches, arrays, save)
        else:
            for start in starts:
                _smd_alone(setup, state, start, objective_batches, arrays, save)


def batch_smd_starts(device):
    """Whether :func:`_smd` advances a horizon's start points together on ``device``: on a GPU."""
    return torch.device(device).type == "cuda"


class _SMDStart:
    """One SMD run of the offline experiment: its key in the arrays, horizon, start, settings,
    stream of minibatches and what was saved of it."""

    def __init__(self, config, arrays, j, h, beta0, steps):
        self.key, self.h, self.beta0, self.steps = f"smd_{j}", h, beta0, steps
        self.hyper = smd_hyperparameters(config["smd_alpha0"], beta0, float(config["K"]), config["momentum"])
        self.j = j
        self.previous = ({name: arrays[f"{self.key}_{name}"] for name in
                          ("u", "meta_loss", "hypergrad", "adam_m", "adam_s", "adam_t")}
                         if f"{self.key}_u" in arrays else None)
        self.done = 0 if self.previous is None else len(self.previous["meta_loss"])

    def stream(self, setup):
        images, labels = setup.train
        return StepBatches(images, labels, setup.config["batch_size"], derived_seed(setup.seed, 4, self.j))

    def keep(self, arrays, smd_state):
        for name, value in smd_state.items():
            arrays[f"{self.key}_{name}"] = value


def _smd_alone(setup, state, start, objective_batches, arrays, save):
    config = setup.config

    def checkpoint(smd_state):
        start.keep(arrays, smd_state)
        save(f"SMD T={start.h} beta0={start.beta0:g}: {len(smd_state['meta_loss'])} meta steps")

    bar = setup.bar(start.steps, start.done, f"SMD T={start.h}, beta0={start.beta0:g}")
    with runs.cpu_settings(setup.device, one_thread=True):  # one unbatched network
        smd_trajectory(state, start.hyper, start.h, start.steps, start.stream(setup), objective_batches,
                       meta_lr=smd_meta_lr(config, start.h), clip=config["smd_clip"],
                       convention=config["convention"], resume=start.previous,
                       on_step=checkpointing(checkpoint, config["smd_checkpoint_every"], start.steps, bar))
    bar.close()


def _smd_together(setup, state, starts, objective_batches, arrays, save):
    config, h, steps = setup.config, starts[0].h, starts[0].steps

    def checkpoint(smd_states):
        for start, smd_state in zip(starts, smd_states):
            start.keep(arrays, smd_state)
        save(f"SMD T={h}, {len(starts)} starts together: {len(smd_states[0]['meta_loss'])} meta steps")

    bar = setup.bar(steps, starts[0].done, f"SMD T={h}, {len(starts)} starts")
    resume = None if starts[0].done == 0 else [start.previous for start in starts]
    smd_trajectories_batched(state, [start.hyper for start in starts], h, steps,
                             [start.stream(setup) for start in starts], objective_batches,
                             meta_lr=smd_meta_lr(config, h), clip=config["smd_clip"],
                             convention=config["convention"], resume=resume,
                             on_step=checkpointing(checkpoint, config["smd_checkpoint_every"], steps, bar))
    bar.close()


def run_offline(profile="quick", *, device="auto", seed=0, data_root=None, results=None, resume=True,
                path=None, show_progress=True, stop_before_smd=False):
    """CLI/chapter entry point: the offline experiment of ``profile``; returns a :class:`runs.Result`.

    Writes ``results/offline_mnist_{profile}_seed{seed}.npz`` (or ``path``),
    reusing a finished file of the same configuration and data and resuming
    a partial one when ``resume``.
    """
    from ...data import load

    config = config_for(profile, seed)
    device = runs.resolve_device(device)
    path = Path(path) if path is not None else result_path(profile, seed, results)
    # The data come first (seconds), so that a result made from other data is not reused.
    train_set = load("mnist", train=True, root=data_root, limit=config["train_limit"])
    test_set = load("mnist", train=False, root=data_root, limit=config["test_limit"])
    return run_experiment(config, (train_set.images, train_set.labels), (test_set.images, test_set.labels), path,
                          profile=profile, seed=seed, device=device, resume=resume, show_progress=show_progress,
                          data_fingerprint=[train_set.fingerprint, test_set.fingerprint],
                          stop_before_smd=stop_before_smd)


def load_offline(path):
    """Read a finished result file written by :func:`run_offline` (for redrawing a longer run),
    with its summary (:func:`offline_surface.add_summary`) recomputed from the raw arrays."""
    arrays, meta = runs.load_result(path)
    if meta.get("config", {}).get("chapter") != CHAPTER:
        raise ValueError(f"path must be a result file of the offline experiment; {path} is not")
    runs.check_arrays(path, arrays, finished_expected(meta["config"]))
    add_summary(arrays, meta["config"])
    return runs.Result(arrays, meta)


def refresh_summary(path):
    """Rewrite a finished result file with its summary recomputed by the current code
    (raw arrays untouched; the commit that did it is recorded as ``summary_commit``)."""
    arrays, meta = load_offline(path)
    meta["summary_commit"] = runs.git_commit()
    runs.save_result(path, arrays, meta)
    return runs.Result(arrays, meta)


def archive_path(seed=0, profile="archive"):
    """The committed result of an archived profile (``archive`` or ``archive_gpu``: the paper's
    time scale)."""
    if profile not in EXTRA_PROFILES:
        raise ValueError(f"profile must be one of {EXTRA_PROFILES}; got {profile!r}")
    return runs.REPO_ROOT / ARCHIVE_DIR / f"{CHAPTER}_{profile}_seed{seed}.npz"


__all__ = ["run_experiment", "run_offline", "load_offline", "refresh_summary", "result_path", "archive_path"]

"""Bounded slices of every paper-profile experiment on one device, with projected full times.

Meant to run once on a lent GPU machine (``bash bench/gpu_check.sh``, see
bench/README.md), within about 7 minutes, and to be tested here on the CPU
(``--device cpu --tiny``, under a minute). Each slice calls the library's
own entry points, times them, and projects the paper profile's full time:

* ``hyper_ratio``: ``measure.step_costs`` (hypergradient step with 1 and
  2 hyperparameters against a plain step) on the device;
* ``offline_sweep``: ``training.train_batched`` with all 2,500 schedules of
  the paper profile in one pass (the profile's chunk), and with Figure 6's 8
  schedules, for a few steps each; ``models.batched_loss`` for the objective and
  (with ``errors=True``) the curves' records;
  projects the sweep (its chunks x 20,000 steps + 4 objectives each) and
  Figure 6;
* ``offline_smd``: ``offline_smd.smd_trajectory`` one meta step at T = 100 and
  one at T = 5000 (fewer if the slice's budget says so), batches drawn
  lazily from ``batches.StepBatches``; the two give seconds per lookahead
  step and per meta-objective, which project the 6 x 5,000 meta steps;
  peak CUDA memory of each;
* ``online_mnist`` and ``online_cifar10``: ``online_loop.online_run`` in baseline
  mode (400 steps), then in stochastic (and, for CIFAR-10, deterministic)
  mode for one adaptation of the paper's size (100 meta steps of horizon
  5); with the time of one evaluation they project the paper's runs (50,000
  steps, adaptation every 10 steps in the first half, evaluation every 100). CIFAR-10 uses
  synthetic tensors of CIFAR's shape (the JPEG copy is too large to carry):
  its timings are valid, its losses are not;
* ``online_batched``: the new path against the old one on MNIST: S = 5 stochastic online
  runs' meta steps batched (``batched_smd.smd_batched``, eager) against 5 separate
  ``hypergrad.smd`` runs, and 5 runs' training batched (``online_batched.online_batched_runs``
  in baseline mode); the FLOPs of one plain step of each network
  (``torch.utils.flop_counter`` where this torch has it) and the measured fp32 matrix-product
  rate (TF32 off), which give each paper experiment's floor;
* ``online_compiled``: the same batched meta step under ``torch.compile`` (``fullgraph=True``;
  ``mode="reduce-overhead"``, CUDA graphs, on a GPU; eager fallback where compiling fails,
  recorded), its ratio to the eager one and to the separate runs, and the projected five
  stochastic MNIST runs batched. Skipped in ``--tiny`` mode on the CPU (compiling takes minutes
  there; ``bench_batched_smd.py`` measures it);
* ``offline_smd_batched``: the offline SMD's starts of one horizon (the paper profile's two
  betas) batched (``batched_offline_smd.smd_trajectories_batched``, eager) against separate
  ``offline_smd.smd_trajectory`` runs, one meta step at T = 100, and the batched one at T = 10,
  which split it into lookahead steps and meta-objective and project the paper's SMD with the
  starts batched;
* ``offline_smd_compiled`` (last: the total of 420 s may skip it; ``--only offline_smd_batched
  offline_smd_compiled`` runs it): the same with the lookahead step under ``torch.compile``
  (``batched_offline_smd.compiled_lookahead_step``; ``mode="reduce-overhead"``, one CUDA graph
  per step, on a GPU), against the eager one. Skipped in ``--tiny`` mode on the CPU.

The summary prints each paper experiment's projection next to its floor (its FLOPs at the
measured fp32 rate): online MNIST's five stochastic runs batched (new path) and separate (old),
the offline SMD at 5,000 meta steps with its starts batched (new) and separate (old), and
online CIFAR-10 (old path: the batched one covers the MNIST MLP only).

MNIST is read from ``--data-root``, else the carried ``gpu_data/`` (gzipped
IDX files are unpacked to a temporary folder), else ``$SHORTBIAS_DATA``,
else synthetic tensors of MNIST's shape; the record says which.

Every slice runs in ``try``/``except`` under its own time budget (its
measurements are sized to it; an alarm stops a slice at twice its budget)
and within the total (``--total``, 420 s; slices past it are skipped); an
error is recorded and the next slice runs. The JSON record
``gpu_check.json`` (in ``--out``, default ``$OUT``) is rewritten after
every slice, so a run cut short still leaves what it measured.
"""

import argparse
import atexit
import gzip
import json
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
# The GPU machine runs a copy of the tree without installing the package: import it (and bench_sweep) from here.
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "bench"))

from bench_sweep import flops_per_sample_step  # noqa: E402
from shortbias_lib.engine import batched_offline_smd, batched_smd, hypergrad, measure, models, schedules, training  # noqa: E402
from shortbias_lib.experiments.offline import (config as offline_config, design as offline_design,  # noqa: E402
                                               smd as offline_smd)
from shortbias_lib.experiments.online import (experiment as online, batched as online_batched,  # noqa: E402
                                              loop as online_loop)
from shortbias_lib.engine.batches import BatchSampler, StepBatches  # noqa: E402
from shortbias_lib.engine.hyperparams import Hyperparameters  # noqa: E402
from shortbias_lib.engine.meta_optim import make_meta_optimizer  # noqa: E402
from shortbias_lib.engine.warm_start import warm_start  # noqa: E402
from shortbias_lib.runs import git_commit, resolve_device, utc_now  # noqa: E402

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# The new path against the old one first: it is what a short lease is for.
SLICES = ("hyper_ratio", "online_batched", "online_compiled", "offline_smd_batched", "offline_sweep", "offline_smd",
          "online_mnist", "online_cifar10", "offline_smd_compiled")
# Seconds per slice on the GPU (the whole check stays under about 7 minutes) and in --tiny mode.
BUDGETS = {"hyper_ratio": 30, "offline_sweep": 60, "offline_smd": 90, "online_mnist": 60,
           "online_cifar10": 110, "online_batched": 40, "online_compiled": 120, "offline_smd_batched": 40,
           "offline_smd_compiled": 150}
BATCHED_RUNS = 5  # the paper's five initial rates of online MNIST, stochastic lookahead
TINY_BUDGETS = {name: 20 for name in SLICES}


class SliceTimeout(Exception):
    """A slice ran past its hard time limit."""


def _alarm(signum, frame):
    raise SliceTimeout("the slice ran past its time limit")


def log(message=""):
    print(message, flush=True)


def fmt_seconds(seconds):
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Clock:
    """Wall time with a device synchronisation at both ends."""

    def __init__(self, device):
        self.device = device

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def time(self, fn, *args, **kwargs):
        self.sync()
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.sync()
        return time.perf_counter() - start, out


# ---------------------------------------------------------------- data

def unpack_mnist(folder):
    """A data root holding ``MNIST/raw/*-ubyte`` from ``folder`` (which may hold them gzipped)."""
    raw = Path(folder) / "MNIST" / "raw"
    if all((raw / name).exists() for name in MNIST_FILES):
        return Path(folder)
    if all((raw / f"{name}.gz").exists() for name in MNIST_FILES):
        root = Path(tempfile.mkdtemp(prefix="shortbias-mnist-"))
        atexit.register(shutil.rmtree, root, True)
        (root / "MNIST" / "raw").mkdir(parents=True)
        for name in MNIST_FILES:
            with gzip.open(raw / f"{name}.gz", "rb") as src, open(root / "MNIST" / "raw" / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        return root
    return None


def find_mnist_root(data_root=None, synthetic=False):
    """``(root or None, how)``: where MNIST comes from, or why it is synthetic."""
    if synthetic:
        return None, "synthetic (asked for)"
    for candidate, how in ((data_root, "--data-root"), (REPO / "gpu_data", "carried gpu_data/"),
                           (os.environ.get("SHORTBIAS_DATA"), "$SHORTBIAS_DATA")):
        if candidate and Path(candidate).is_dir():
            root = unpack_mnist(candidate)
            if root is not None:
                return root, how
    return None, "synthetic (no MNIST found)"


def load_mnist(root, device, tiny):
    """``(train (x, y), test (x, y), source)`` on ``device``: MNIST from ``root`` or synthetic."""
    n_train, n_test = (1000, 200) if tiny else (60000, 10000)
    if root is not None:
        from shortbias_lib.data import load

        train = load("mnist", train=True, root=root, limit=n_train if tiny else None, download=False)
        test = load("mnist", train=False, root=root, limit=n_test if tiny else None, download=False)
        return ((train.images.to(device), train.labels.to(device)),
                (test.images.to(device), test.labels.to(device)), f"MNIST ({train.source})")
    return (synthetic(n_train, (1, 28, 28), device, 0), synthetic(n_test, (1, 28, 28), device, 1),
            f"synthetic tensors of MNIST's shape ({n_train} + {n_test})")


def synthetic(n, shape, device, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n,) + shape, generator=g).to(device),
            torch.randint(0, 10, (n,), generator=g).to(device))


# ---------------------------------------------------------------- slices

def slice_hyper_ratio(ctx):
    """Hypergradient step (1 and 2 hyperparameters) against a plain step, on the device."""
    (images, labels), _, _ = ctx["mnist"]
    params = models.mlp_init(torch.Generator().manual_seed(0), device=ctx["device"])
    batches = [(images[i:i + 100], labels[i:i + 100]) for i in range(0, 1000, 100)]
    steps, repeats = (5, 1) if ctx["tiny"] else (50, 3)
    costs = measure.step_costs(models.mlp_apply, training.init_state(params), batches,
                                 steps=steps, repeats=repeats)
    plain = costs["plain"]
    ratios = {name: value / plain for name, value in costs.items()}
    for name, value in costs.items():
        log(f"  {name:24s} {1e3 * value:8.3f} ms per step  {ratios[name]:5.2f}x plain")
    return {"throughput": 1.0 / plain, "unit": "plain MLP steps/s (batch 100)",
            "measurements": {"seconds_per_step": costs, "ratio_to_plain": ratios}}


def _time_sweep_steps(ctx, params, alpha0, beta, batches, share):
    """Seconds per step of ``train_batched`` with ``len(alpha0)`` schedules (sized to ``share`` s)."""
    clock, K, mu = ctx["clock"], ctx["paper_offline"]["K"], ctx["paper_offline"]["momentum"]
    schedule = schedules.InverseTime(alpha0, beta, K)

    def run(steps):
        return clock.time(training.train_batched, models.mlp_apply, params, schedule, steps, batches, mu,
                          record_steps=[])

    first, _ = run(2)  # compiles vmap's graph, grows the allocator
    steps = max(2, min(200, int(share / max(first / 2, 1e-6))))
    seconds, result = run(steps)
    return seconds / steps, steps, result


def slice_offline_sweep(ctx):
    """train_batched with the paper's 2,500 schedules (one pass), its chunk and Figure 6's set."""
    cfg = ctx["paper_offline"]
    device, clock, tiny = ctx["device"], ctx["clock"], ctx["tiny"]
    (images, labels), (test_x, test_y), _ = ctx["mnist"]
    S_all, S_chunk, S_curves = (16, 8, 4) if tiny else (int(cfg["samples"]), int(cfg["chunk"]),
                                                        2 * len(cfg["horizons"]))
    n_obj = len(labels) if tiny else int(cfg["objective_examples"])
    eval_chunk = min(int(cfg["eval_chunk"]), n_obj)
    params = models.mlp_init(torch.Generator().manual_seed(0), cfg["sizes"], cfg["init_std"], device=device)
    batches = StepBatches(images, labels, int(cfg["batch_size"]), seed=2)
    batches(0)
    log_a, log_b = offline_design.sample_hyperparameters(S_all, 0)
    alpha0, beta = torch.as_tensor(10.0 ** log_a), torch.as_tensor(10.0 ** log_b)
    share = ctx["budget"] / 8
    per_step, times, errors = {}, {}, {}
    for name, S in (("all", S_all), ("chunk", S_chunk), ("curves", S_curves)):
        try:
            per_step[name], steps, result = _time_sweep_steps(ctx, params, alpha0[:S], beta[:S], batches, share)
        except RuntimeError as error:  # e.g. out of memory with all schedules at once: go on with the chunk
            if name != "all":
                raise
            errors[name] = f"{type(error).__name__}: {error}"[:500]
            log(f"  train_batched, S = {S}: FAILED ({errors[name][:200]})")
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        log(f"  train_batched, S = {S:5d}: {1e3 * per_step[name]:8.3f} ms per step ({steps} steps), "
            f"{S / per_step[name]:12.1f} sample-steps/s")
        if name == "chunk":
            times["objective"], _ = clock.time(models.batched_loss, models.mlp_apply, result.params,
                                               images[:n_obj], labels[:n_obj], chunk=eval_chunk)
            log(f"  objective ({n_obj} examples) of {S} runs: {times['objective']:.3f} s")
        if name == "curves":
            times["curve_record"], _ = clock.time(
                lambda p: (models.batched_loss(models.mlp_apply, p, images, labels, eval_chunk, errors=True,
                                               dtype=torch.float64),
                           models.batched_loss(models.mlp_apply, p, test_x, test_y, eval_chunk, errors=True,
                                               dtype=torch.float64)), result.params)
            log(f"  Figure 6 record (train and test metrics) of {S} runs: {times['curve_record']:.3f} s")
    flops = flops_per_sample_step(cfg["sizes"], int(cfg["batch_size"]))
    if "all" not in per_step:  # one pass failed: project it from the chunk
        S_all, per_step["all"] = S_chunk, per_step["chunk"]
    # Paper profile: ceil(samples / chunk) chunks of max(horizons) steps, an objective per horizon.
    steps_paper = int(max(cfg["horizons"]))
    chunks = math.ceil(int(cfg["samples"]) / int(cfg["chunk"]))
    scale_obj = int(cfg["objective_examples"]) / n_obj * int(cfg["chunk"]) / S_chunk
    # (Both factors are 1 on the GPU; in --tiny mode they scale the small S and data linearly.)
    sweep = chunks * (steps_paper * per_step["chunk"] * int(cfg["chunk"]) / S_chunk
                      + len(cfg["horizons"]) * times["objective"] * scale_obj)
    one_pass = steps_paper * per_step["all"] * (int(cfg["samples"]) / S_all) \
        + len(cfg["horizons"]) * times["objective"] * scale_obj * chunks
    records = steps_paper // int(cfg["curve_every"]) + 1
    curves = steps_paper * per_step["curves"] + records * times["curve_record"]
    rate = S_all / per_step["all"]
    log(f"  effective rate with S = {S_all}: {rate * flops / 1e12:.2f} TFLOP/s of matrix products "
        f"({flops / 1e6:.2f} MFLOP per sample-step)")
    log(f"  projected paper sweep: {fmt_seconds(sweep)} in chunks of {cfg['chunk']}, "
        f"{fmt_seconds(one_pass)} in one pass of {cfg['samples']}; Figure 6 curves {fmt_seconds(curves)}")
    return {"throughput": rate, "unit": f"sample-steps/s, {S_all} schedules batched",
            "measurements": {"seconds_per_step": {f"S={S_all}": per_step["all"], f"S={S_chunk}": per_step["chunk"],
                                                  f"S={S_curves}": per_step["curves"]},
                             "objective_seconds": times["objective"], "objective_examples": n_obj,
                             "curve_record_seconds": times["curve_record"],
                             "tflops_matrix_products": rate * flops / 1e12, "errors": errors},
            "projection": {"sweep_chunked_s": sweep, "sweep_one_pass_s": one_pass, "curves_s": curves,
                           "note": "tiny mode scales CPU timings of small S linearly" if tiny else ""}}


def _skip_compiling(ctx, where=""):
    """A compiled slice's result when it is skipped (``--tiny`` on the CPU, where compiling takes
    minutes), logged; ``None`` when it runs."""
    if not (ctx["tiny"] and ctx["device"].type == "cpu"):
        return None
    reason = f"skipped in --tiny mode on the CPU: compiling takes minutes there{where}"
    log(f"  {reason}")
    return {"skipped": reason}


def _measured(ctx, key, slice_name):
    """What an earlier slice left in ``ctx[key]`` for a later one; an error naming it if it did not run."""
    if ctx.get(key) is None:
        raise RuntimeError(f"needs the {slice_name} slice's measurements")
    return ctx[key]


def _offline_smd_inputs(ctx):
    """The paper profile's SMD inputs on the device, made once: ``(warm state, objective batches,
    objective examples)``: the warm start (its steps) and the first examples in eval chunks
    (all of a --tiny run's)."""
    if "offline_smd_inputs" not in ctx:
        cfg, device = ctx["paper_offline"], ctx["device"]
        (images, labels), _, _ = ctx["mnist"]
        n_obj = len(labels) if ctx["tiny"] else int(cfg["smd_objective_examples"])
        chunk = min(int(cfg["eval_chunk"]), n_obj)
        objective_batches = [(images[s:s + chunk], labels[s:s + chunk]) for s in range(0, n_obj, chunk)]
        params = models.mlp_init(torch.Generator().manual_seed(0), cfg["sizes"], cfg["init_std"], device=device)
        warm = warm_start(params, StepBatches(images, labels, int(cfg["batch_size"]), 1),
                          int(cfg["warm_steps"]), cfg["warm_lr"], cfg["warm_momentum"], cfg["convention"])
        ctx["offline_smd_inputs"] = (warm, objective_batches, n_obj)
    return ctx["offline_smd_inputs"]


def slice_offline_smd(ctx):
    """offline_smd.smd_trajectory: one meta step at T = 100 and one at T = 5000, lazy batches."""
    cfg = ctx["paper_offline"]
    device, clock, tiny = ctx["device"], ctx["clock"], ctx["tiny"]
    (images, labels), _, _ = ctx["mnist"]
    warm, objective_batches, n_obj = _offline_smd_inputs(ctx)
    K, mu = float(cfg["K"]), cfg["momentum"]

    def meta_step(T, seed):
        batches = StepBatches(images, labels, int(cfg["batch_size"]), seed)
        batches(0)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() if device.type == "cuda" else 0
        hyper = offline_smd.smd_hyperparameters(cfg["smd_alpha0"], cfg["smd_betas"][0], K, mu)
        seconds, out = clock.time(offline_smd.smd_trajectory, warm, hyper, T, 1, batches, objective_batches,
                                  meta_lr=cfg["smd_meta_lr"], clip=cfg["smd_clip"], convention=cfg["convention"])
        peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20 if device.type == "cuda" else float("nan")
        return seconds, peak, out

    short, long_ = (5, 20) if tiny else (100, 5000)
    meta_step(short, 90)  # warm-up
    t_short, peak_short, _ = meta_step(short, 91)
    per_step_guess = max(t_short / short, 1e-6)
    # The long lookahead as long as the budget allows (the paper's T = 5000 on the GPU).
    long_ = max(short + 1, min(long_, int(0.6 * ctx["budget"] / per_step_guess)))
    t_long, peak_long, out = meta_step(long_, 92)
    per_step = max((t_long - t_short) / (long_ - short), 1e-9)
    per_objective = max(t_short - short * per_step, 0.0) * (int(cfg["smd_objective_examples"]) / n_obj)
    total = 0.0
    for h, meta in zip(cfg["smd_horizons"], cfg["smd_meta_steps"]):
        total += len(cfg["smd_betas"]) * int(meta) * (int(h) * per_step + per_objective)
    log(f"  meta step, T = {short}: {t_short:.3f} s (peak CUDA {peak_short:.1f} MiB); "
        f"T = {long_}: {t_long:.3f} s (peak CUDA {peak_long:.1f} MiB)")
    log(f"  {1e3 * per_step:.3f} ms per lookahead step, {per_objective:.3f} s per meta-objective "
        f"({cfg['smd_objective_examples']} examples); projected paper SMD "
        f"({len(cfg['smd_betas'])} starts x {cfg['smd_horizons']} x {cfg['smd_meta_steps']} meta steps): "
        f"{fmt_seconds(total)}")
    return {"throughput": 1.0 / per_step, "unit": "lookahead steps/s (2 hyperparameters, one network)",
            "measurements": {"T": [short, long_], "meta_step_seconds": [t_short, t_long],
                             "peak_cuda_mib": [peak_short, peak_long], "seconds_per_lookahead_step": per_step,
                             "seconds_per_meta_objective": per_objective,
                             "meta_loss_long": [float(x) for x in out["meta_loss"]]},
            "projection": {"smd_s": total}}


def slice_offline_smd_batched(ctx):
    """The offline SMD's starting points of one horizon batched (``batched_offline_smd``) against
    separate ``smd_trajectory`` runs: one meta step at T = 100 (and T = 10, which splits the
    batched step into lookahead and meta-objective); projects the paper's SMD with the starts batched."""
    cfg, clock, tiny = ctx["paper_offline"], ctx["clock"], ctx["tiny"]
    (images, labels), _, _ = ctx["mnist"]
    warm, objective_batches, n_obj = _offline_smd_inputs(ctx)
    K, mu = float(cfg["K"]), cfg["momentum"]
    hypers = [offline_smd.smd_hyperparameters(cfg["smd_alpha0"], beta0, K, mu) for beta0 in cfg["smd_betas"]]
    S, (short, long_) = len(hypers), (3, 10) if tiny else (10, 100)
    meta = {"meta_lr": cfg["smd_meta_lr"], "clip": cfg["smd_clip"], "convention": cfg["convention"]}

    def streams():
        return [StepBatches(images, labels, int(cfg["batch_size"]), 100 + j) for j in range(S)]

    def separate(T):
        for hyper, stream in zip(hypers, streams()):
            offline_smd.smd_trajectory(warm, hyper, T, 1, stream, objective_batches, **meta)

    def batched(T, step=None):
        batched_offline_smd.smd_trajectories_batched(warm, hypers, T, 1, streams(), objective_batches, step=step,
                                                     **meta)

    separate(short), batched(short)  # warm-up
    runs = {"separate": lambda: separate(long_), "batched": lambda: batched(long_),
            "batched short": lambda: batched(short)}
    best = {name: math.inf for name in runs}
    for _ in range(2):  # interleaved repeats, the best of each
        for name, fn in runs.items():
            best[name] = min(best[name], clock.time(fn)[0])
    ratio = best["separate"] / best["batched"]
    per_step, per_objective, total = _project_offline_smd(cfg, best["batched short"], best["batched"], short, long_,
                                                          n_obj)
    ctx["offline_batched"] = {"run": batched, "T": (short, long_), "seconds": best, "n_obj": n_obj}
    log(f"  one meta step of the {S} starts, T = {long_}: separate {1e3 * best['separate']:.1f} ms, "
        f"batched {1e3 * best['batched']:.1f} ms (speed-up {ratio:.2f}); batched T = {short}: "
        f"{1e3 * best['batched short']:.1f} ms")
    log(f"  batched: {1e3 * per_step:.3f} ms per lookahead step of {S} runs, {per_objective:.3f} s per meta-objective "
        f"({cfg['smd_objective_examples']} examples); projected paper SMD, starts batched: {fmt_seconds(total)}")
    return {"throughput": S / per_step, "unit": f"run-lookahead-steps/s, {S} starts batched",
            "measurements": {"S": S, "T": [short, long_], "meta_step_seconds": best,
                             "seconds_per_lookahead_step": per_step, "seconds_per_meta_objective": per_objective},
            "ratios": {"separate_over_batched": ratio}, "projection": {"smd_batched_s": total}}


def _project_offline_smd(cfg, t_short, t_long, short, long_, n_obj):
    """``(s per lookahead step, s per meta-objective, projected paper SMD s)`` from the batched
    meta step's time at two horizons (the starts of a horizon batched, the horizons in turn)."""
    per_step = max((t_long - t_short) / (long_ - short), 1e-9)
    per_objective = max(t_short - short * per_step, 0.0) * (int(cfg["smd_objective_examples"]) / n_obj)
    total = sum(int(m) * (int(h) * per_step + per_objective)
                for h, m in zip(cfg["smd_horizons"], cfg["smd_meta_steps"]))
    return per_step, per_objective, total


def slice_offline_smd_compiled(ctx):
    """The batched offline meta step with its lookahead step compiled (``mode="reduce-overhead"``,
    CUDA graphs, on a GPU) against the eager batched one; projects the paper's SMD."""
    device, clock, cfg = ctx["device"], ctx["clock"], ctx["paper_offline"]
    skipped = _skip_compiling(ctx)
    if skipped:
        return skipped
    b = _measured(ctx, "offline_batched", "offline_smd_batched")
    (short, long_), run = b["T"], b["run"]
    step = batched_offline_smd.compiled_lookahead_step(mode="reduce-overhead" if device.type == "cuda" else None)
    compile_s = clock.time(run, short, step)[0]  # compiles its three graphs
    best = {T: min(clock.time(run, T, step)[0] for _ in range(2)) for T in (short, long_)}
    per_step, per_objective, total = _project_offline_smd(cfg, best[short], best[long_], short, long_, b["n_obj"])
    ratio = b["seconds"]["batched"] / best[long_]
    log(f"  batched, lookahead step {'compiled' if step.compiled else 'EAGER FALLBACK: ' + str(step.reason)}: "
        f"{1e3 * best[long_]:.1f} ms per meta step at T = {long_} (speed-up over eager {ratio:.2f}, over the "
        f"separate runs {b['seconds']['separate'] / best[long_]:.2f}); {1e3 * per_step:.3f} ms per lookahead step; "
        f"first call with compiling {compile_s:.0f} s; projected paper SMD {fmt_seconds(total)}")
    return {"throughput": 1.0 / per_step, "unit": "lookahead steps/s of the starts batched, compiled",
            "measurements": {"T": [short, long_], "meta_step_seconds": [best[short], best[long_]],
                             "seconds_per_lookahead_step": per_step, "seconds_per_meta_objective": per_objective,
                             "compiled": step.compiled, "reason": step.reason, "compile_s": compile_s},
            "ratios": {"eager_over_compiled": ratio}, "projection": {"smd_batched_compiled_s": total}}


def slice_online(ctx, dataset):
    """online_loop.online_run in each mode for a few adaptations of the paper's size; projects the paper runs."""
    device, clock, tiny = ctx["device"], ctx["clock"], ctx["tiny"]
    cfg = dict(online.SIZES["paper"][dataset])
    name = online.DATASET_MODELS[dataset]
    init, apply = models.MODELS[name]
    if dataset == "mnist":
        (images, labels), (test_x, test_y), source = ctx["mnist"]
    else:
        n_train, n_test = (256, 64) if tiny else (50000, 10000)
        images, labels = synthetic(n_train, (3, 32, 32), device, 2)
        test_x, test_y = synthetic(n_test, (3, 32, 32), device, 3)
        source = f"synthetic tensors of CIFAR-10's shape ({n_train} + {n_test}): timings only"
    kwargs = {"filter_size": 3} if name == "cnn" else {}
    params = init(torch.Generator().manual_seed(0), device=device, **kwargs)
    batch = int(cfg["batch_size"]) if not tiny else 20
    meta_steps = int(cfg["meta_steps"]) if not tiny else 2
    every, horizon = int(cfg["adapt_every"]), int(cfg["horizon"])

    def samplers(seed):
        return (BatchSampler(images, labels, batch, seed, device),
                BatchSampler(images, labels, batch, seed + 1, device))

    def run(mode, steps, adapt_until, lr, meta=meta_steps):
        train_s, meta_s = samplers(len(mode))
        settings = online_loop.OnlineSettings(mode=mode, steps=steps, adapt_until=adapt_until, adapt_every=every,
                                              meta_steps=meta, horizon=horizon, meta_lr=cfg["meta_lr"],
                                              eval_every=steps)
        return clock.time(online_loop.online_run, apply, params, train_s, meta_s, lr, 0.9, settings=settings,
                          show_progress=False, label=f"{dataset} {mode}")

    def eval_fn(p):
        return models.mean_loss(apply, p, images, labels, chunk=1000)

    def test_fn(p):
        return models.error_rate(apply, p, test_x, test_y, chunk=1000)

    deadline = time.perf_counter() + ctx["budget"]
    eval_fn(params)  # warm-up
    t_eval, _ = clock.time(eval_fn, params)
    t_test, _ = clock.time(test_fn, params)
    base_steps = 20 if tiny else 400
    run("baseline", 2 * every, every, online.PAPER_BASELINE_LR[dataset])  # warm-up
    t_base, _ = run("baseline", base_steps, base_steps // 2, online.PAPER_BASELINE_LR[dataset])
    t_train = t_base / base_steps
    modes = ["stochastic"] + (["deterministic"] if cfg["det_lrs"] else [])
    t_adapt, lookahead_steps, skipped = {}, {}, []
    steps = 2 * every  # one adaptation (at step 0), then plain training to the end
    for mode in modes:
        lookahead_steps[mode] = meta_steps * (horizon + (1 if mode == "deterministic" else horizon))
        lr = (cfg["det_lrs"] if mode == "deterministic" else cfg["init_lrs"])[0]
        if mode != "stochastic" and time.perf_counter() + 2 * t_adapt["stochastic"] > deadline:
            # No time left: bound it by the stochastic adaptation's time per network step.
            t_adapt[mode] = t_adapt["stochastic"] * lookahead_steps[mode] / lookahead_steps["stochastic"]
            skipped.append(mode)
            log(f"  {mode}: skipped (budget), estimated {t_adapt[mode]:.3f} s per adaptation")
            continue
        run(mode, steps, every, lr, meta=1)  # warm-up (first double backward, autotuning)
        seconds, result = run(mode, steps, every, lr)
        t_adapt[mode] = max(seconds - steps * t_train, 1e-9)
        log(f"  {mode}: {t_adapt[mode]:.3f} s per adaptation of {meta_steps} meta steps "
            f"(horizon {horizon}), {lookahead_steps[mode] / t_adapt[mode]:.0f} lookahead+objective steps/s"
            f"{'; lookahead diverged' if len(result.lookahead_diverged_steps) else ''}")
    # The paper's runs: baseline + one per initial rate (stochastic) + deterministic ones.
    steps_p, every_p = int(cfg["steps"]), int(cfg["eval_every"])
    adapt_p = math.ceil((steps_p // 2) / every)
    meta_scale = int(cfg["meta_steps"]) / meta_steps
    one_run = steps_p * t_train + (steps_p // every_p + 1) * t_eval + t_test
    total = one_run * (1 + len(cfg["init_lrs"]) + len(cfg["det_lrs"]))
    total += len(cfg["init_lrs"]) * adapt_p * t_adapt["stochastic"] * meta_scale
    if cfg["det_lrs"]:
        total += len(cfg["det_lrs"]) * adapt_p * t_adapt["deterministic"] * meta_scale
    log(f"  data: {source}")
    log(f"  training step {1e3 * t_train:.3f} ms, evaluation {t_eval:.3f} s, test {t_test:.3f} s; "
        f"projected paper {dataset} ({1 + len(cfg['init_lrs']) + len(cfg['det_lrs'])} runs of {steps_p} steps, "
        f"{adapt_p} adaptations each): {fmt_seconds(total)}")
    return {"throughput": lookahead_steps["stochastic"] / t_adapt["stochastic"],
            "unit": "lookahead+objective network steps/s in stochastic SMD adaptation",
            "measurements": {"data": source, "seconds_per_training_step": t_train, "eval_seconds": t_eval,
                             "test_seconds": t_test, "seconds_per_adaptation": t_adapt,
                             "meta_steps_measured": meta_steps, "batch": batch, "skipped": skipped},
            "projection": {"online_s": total}}


def plain_step_flops(apply, params, images, labels):
    """FLOPs of one plain training step (forward and backward of the minibatch loss), counted by
    ``torch.utils.flop_counter`` (NaN where this torch lacks it)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return float("nan")
    leaves = [p.detach().requires_grad_() for p in params]
    with FlopCounterMode(display=False) as counter:
        torch.autograd.grad(models.loss_fn(apply, leaves, images, labels), leaves)
    return float(counter.get_total_flops())


def fp32_rate(device, clock, n):
    """Measured FLOP/s of an n x n float32 matrix product with TF32 off (the floors' rate)."""
    a = torch.rand(n, n, device=device)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a @ a
        seconds = min(clock.time(torch.matmul, a, a)[0] for _ in range(3))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return 2.0 * n ** 3 / seconds


def meta_step_floor(plain, horizon, n_eval, directions=2):
    """A lower bound on one meta step's FLOPs: each lookahead step costs a plain step per network
    and per tangent direction (a Hessian-vector product is at least a plain step), and each
    evaluation batch a plain step (the meta-objective's gradient)."""
    return (horizon * (1 + directions) + n_eval) * plain


def _mnist_runs(ctx, S, batch, seed=0):
    """S MNIST MLPs, their stacked weights and one train and one meta sampler per run."""
    (images, labels), _, _ = ctx["mnist"]
    device = ctx["device"]
    params = models.mlp_init(torch.Generator().manual_seed(seed), device=device)
    samplers = [tuple(BatchSampler(images, labels, batch, 2 * s + k, device) for k in (0, 1)) for s in range(S)]
    return params, samplers


def _time_meta_steps(ctx, S, M, batch, step=None, separate=False):
    """Seconds per meta step of S stochastic runs (T = n_eval = 5): batched with ``step``, or separate."""
    horizon = int(online.SIZES["paper"]["mnist"]["horizon"])
    params, samplers = _mnist_runs(ctx, S, batch)
    lrs = [float(a) for a in online.PAPER_INIT_LRS["mnist"][:S]]
    hypers = [Hyperparameters(a, 0.9, learn=("lr", "momentum"), space="log") for a in lrs]
    if separate:
        def run():
            for hyper, (_, meta) in zip(hypers, samplers):
                hypergrad.smd(models.mlp_apply, training.init_state(params), hyper, horizon, M,
                              hypergrad.lookahead_batches(meta, horizon, horizon, False),
                              optimizer=make_meta_optimizer("adam", 1e-2))
    else:
        w, v = batched_smd.stack_runs([training.init_state(params)] * S)
        u = np.stack([h.vector() for h in hypers])

        def run():
            drawn = batched_smd.draw_meta_batches([meta for _, meta in samplers], M, horizon, horizon)
            batched_smd.smd_batched(w, v, u, M, drawn, step=step)
    run()  # warm-up (and, for a compiled step, the compiling)
    seconds = min(ctx["clock"].time(run)[0] for _ in range(2))
    return seconds / M


def slice_online_batched(ctx):
    """The new path's eager part against the old one, on MNIST: S runs' meta steps and training."""
    device, clock, tiny = ctx["device"], ctx["clock"], ctx["tiny"]
    cfg = online.SIZES["paper"]["mnist"]
    S, M, batch = BATCHED_RUNS, (1 if tiny else 10), (20 if tiny else int(cfg["batch_size"]))
    per_meta = {"separate": _time_meta_steps(ctx, S, M, batch, separate=True),
                "batched eager": _time_meta_steps(ctx, S, M, batch)}
    # training: S runs' plain steps batched (baseline mode, no adaptation) and one run alone
    params, samplers = _mnist_runs(ctx, S, batch)
    steps = 10 if tiny else 200
    settings = online_loop.OnlineSettings(mode="baseline", steps=steps, adapt_until=steps // 2, eval_every=steps)
    lr = online.PAPER_BASELINE_LR["mnist"]
    run = lambda: online_batched.online_batched_runs(  # noqa: E731
        params, [t for t, _ in samplers], [m for _, m in samplers], [lr] * S, settings=settings)
    run()
    t_train_batched = clock.time(run)[0] / steps
    alone = lambda: online_loop.online_run(models.mlp_apply, params, samplers[0][0], samplers[0][1], lr,  # noqa: E731
                                           settings=settings, show_progress=False)
    alone()
    t_train_alone = clock.time(alone)[0] / steps
    (images, labels), _, _ = ctx["mnist"]
    t_eval = clock.time(models.mean_loss, models.mlp_apply, params, images, labels, 1000)[0]
    x, y = images[:batch], labels[:batch]
    flops_mlp = plain_step_flops(models.mlp_apply, params, x, y)
    if not math.isfinite(flops_mlp):
        flops_mlp = float(flops_per_sample_step(batch_size=batch)) * batch  # the MLP's formula (bench_sweep)
    cnn = models.cnn_init(torch.Generator().manual_seed(0), filter_size=3, device=device)
    cx = torch.rand(batch, 3, 32, 32, device=device)
    flops_cnn = plain_step_flops(models.cnn_apply, cnn, cx, y)
    rate = fp32_rate(device, clock, 128 if tiny else 8192)
    scale = int(cfg["batch_size"]) / batch  # tiny mode: FLOPs of the paper's batch
    ctx["batched"] = {"S": S, "seconds_per_meta_step": per_meta, "train_batched_s": t_train_batched,
                      "train_alone_s": t_train_alone, "eval_s": t_eval, "plain_flops_mlp": flops_mlp * scale,
                      "plain_flops_cnn": flops_cnn * scale, "fp32_flops_per_s": rate}
    ratio = per_meta["separate"] / per_meta["batched eager"]
    for name, seconds in per_meta.items():
        log(f"  {name:15s} {1e3 * seconds:8.2f} ms per meta step of {S} runs ({M} meta steps, batch {batch})")
    log(f"  batched eager / separate: speed-up {ratio:.2f}; training {S} runs batched "
        f"{1e3 * t_train_batched:.3f} ms per step, one run {1e3 * t_train_alone:.3f} ms")
    log(f"  plain step {flops_mlp * scale / 1e6:.1f} MFLOP (MLP), {flops_cnn * scale / 1e6:.1f} MFLOP (CNN), "
        f"batch {cfg['batch_size']}; fp32 matrix products {rate / 1e12:.2f} TFLOP/s (TF32 off)")
    eager = project_five(ctx["batched"], per_meta["batched eager"], t_train_batched)
    old = project_five(ctx["batched"], per_meta["separate"], S * t_train_alone)
    log(f"  projected five stochastic runs: batched eager {fmt_seconds(eager)}, separate {fmt_seconds(old)}")
    return {"throughput": S / per_meta["batched eager"], "unit": "run-meta-steps/s, batched eager",
            "measurements": ctx["batched"], "ratios": {"separate_over_batched_eager": ratio},
            "projection": {"floors_s": paper_floors(ctx["batched"]), "online_mnist_5_stochastic_batched_eager_s": eager,
                           "online_mnist_5_stochastic_separate_s": old}}


def paper_floors(b):
    """Each paper experiment's FLOPs at the measured fp32 rate (lower bounds, see :func:`meta_step_floor`)."""
    mnist, cifar = online.SIZES["paper"]["mnist"], online.SIZES["paper"]["cifar10"]
    off = offline_config.config_for("paper")

    def online_floor(cfg, plain, runs_by_evals):
        adaptations = math.ceil(cfg["steps"] // 2 / cfg["adapt_every"])
        return sum(n * (cfg["steps"] * plain + adaptations * cfg["meta_steps"]
                        * meta_step_floor(plain, cfg["horizon"], n_eval)) for n, n_eval in runs_by_evals)

    five = online_floor(mnist, b["plain_flops_mlp"], [(len(mnist["init_lrs"]), mnist["horizon"])])
    cifar_all = online_floor(cifar, b["plain_flops_cnn"], [(len(cifar["init_lrs"]), cifar["horizon"]),
                                                           (len(cifar["det_lrs"]), 1)])
    objective = int(off["smd_objective_examples"]) / int(off["batch_size"]) * b["plain_flops_mlp"]
    smd = len(off["smd_betas"]) * sum(int(m) * (int(h) * 3 * b["plain_flops_mlp"] + objective)
                                      for h, m in zip(off["smd_horizons"], off["smd_meta_steps"]))
    rate = b["fp32_flops_per_s"]
    return {"online_mnist_5_stochastic": five / rate, "online_cifar10": cifar_all / rate, "offline_smd": smd / rate}


def project_five(b, per_meta, train_step):
    """Five stochastic MNIST runs of the paper: adaptations x meta steps + training + evaluations."""
    cfg = online.SIZES["paper"]["mnist"]
    adaptations = math.ceil(cfg["steps"] // 2 / cfg["adapt_every"])
    evals = b["S"] * (cfg["steps"] // cfg["eval_every"] + 1) * b["eval_s"]
    return adaptations * cfg["meta_steps"] * per_meta + cfg["steps"] * train_step + evals


def slice_online_compiled(ctx):
    """The batched meta step compiled (CUDA graphs on a GPU) against eager and the separate runs."""
    device = ctx["device"]
    skipped = _skip_compiling(ctx, " (bench_batched_smd.py measures it)")
    if skipped:
        return skipped
    b = _measured(ctx, "batched", "online_batched")
    cfg = online.SIZES["paper"]["mnist"]
    S, M = b["S"], 10
    mode = "reduce-overhead" if device.type == "cuda" else None
    step = batched_smd.compiled_meta_step(mode=mode, fullgraph=True)
    start = time.perf_counter()
    per_meta = _time_meta_steps(ctx, S, M, int(cfg["batch_size"]), step=step)
    wall = time.perf_counter() - start
    eager, separate = b["seconds_per_meta_step"]["batched eager"], b["seconds_per_meta_step"]["separate"]
    ratios = {"eager_over_compiled": eager / per_meta, "separate_over_compiled": separate / per_meta}
    log(f"  batched compiled ({'compiled' if step.compiled else 'EAGER FALLBACK: ' + str(step.reason)}): "
        f"{1e3 * per_meta:.2f} ms per meta step of {S} runs; speed-up over eager {ratios['eager_over_compiled']:.2f}, "
        f"over {S} separate runs {ratios['separate_over_compiled']:.2f} (compiling and timing {wall:.0f} s)")
    adaptation = cfg["meta_steps"] * per_meta
    new = project_five(b, per_meta, b["train_batched_s"])
    old = project_five(b, separate, S * b["train_alone_s"])
    log(f"  one adaptation of {S} runs ({cfg['meta_steps']} meta steps): {adaptation:.3f} s (target <= 0.15 s); "
        f"projected five stochastic runs batched {fmt_seconds(new)} (target <= 15 min), separate {fmt_seconds(old)}")
    return {"throughput": S / per_meta, "unit": "run-meta-steps/s, batched compiled",
            "measurements": {"seconds_per_meta_step": per_meta, "compiled": step.compiled, "reason": step.reason,
                             "adaptation_s": adaptation},
            "ratios": ratios,
            "projection": {"online_mnist_5_stochastic_batched_s": new, "online_mnist_5_stochastic_separate_s": old}}


SLICE_FUNCTIONS = {
    "hyper_ratio": slice_hyper_ratio,
    "offline_sweep": slice_offline_sweep,
    "offline_smd": slice_offline_smd,
    "offline_smd_batched": slice_offline_smd_batched,
    "offline_smd_compiled": slice_offline_smd_compiled,
    "online_mnist": lambda ctx: slice_online(ctx, "mnist"),
    "online_cifar10": lambda ctx: slice_online(ctx, "cifar10"),
    "online_batched": slice_online_batched,
    "online_compiled": slice_online_compiled,
}


def against_floors(record):
    """``{experiment: (projected s, floor s)}`` from the record's slices (NaN where one did not run)."""
    def get(slice_name, key):
        return record["slices"].get(slice_name, {}).get("projection", {}).get(key, float("nan"))

    floors = record["slices"].get("online_batched", {}).get("projection", {}).get("floors_s", {})
    five = floors.get("online_mnist_5_stochastic", float("nan"))
    return {"online MNIST, 5 stochastic runs, batched compiled":
            (get("online_compiled", "online_mnist_5_stochastic_batched_s"), five),
            "online MNIST, 5 stochastic runs, batched eager":
            (get("online_batched", "online_mnist_5_stochastic_batched_eager_s"), five),
            "online MNIST, 5 stochastic runs, separate (old)":
            (get("online_batched", "online_mnist_5_stochastic_separate_s"), five),
            "online CIFAR-10, all runs (old path)":
            (get("online_cifar10", "online_s"), floors.get("online_cifar10", float("nan"))),
            "offline SMD, 5,000 meta steps, starts batched, compiled (new)":
            (get("offline_smd_compiled", "smd_batched_compiled_s"), floors.get("offline_smd", float("nan"))),
            "offline SMD, 5,000 meta steps, starts batched (new)":
            (get("offline_smd_batched", "smd_batched_s"), floors.get("offline_smd", float("nan"))),
            "offline SMD, 5,000 meta steps (old path)":
            (get("offline_smd", "smd_s"), floors.get("offline_smd", float("nan")))}


# ---------------------------------------------------------------- driver

def machine(device):
    info = {"host": platform.node(), "python": platform.python_version(), "torch": torch.__version__,
            "device": str(device), "git_commit": git_commit(), "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                    multiprocessors=props.multi_processor_count,
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                    float32_matmul_precision=torch.get_float32_matmul_precision())
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a CPU test of the script)")
    parser.add_argument("--synthetic", action="store_true", help="synthetic MNIST-shaped data")
    parser.add_argument("--data-root", default=None, help="folder with MNIST/raw (plain or .gz)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out",
                        help="folder for gpu_check.json (default: $OUT)")
    parser.add_argument("--only", nargs="*", default=None, choices=SLICES, help="run only these slices")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every slice's budget")
    parser.add_argument("--total", type=float, default=None,
                        help="seconds for the whole check (default 420; --tiny 55): slices past it are skipped")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.total is None:
        args.total = 55.0 if args.tiny else 420.0
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1 if args.tiny else torch.get_num_threads())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budgets = {k: v * args.budget_scale for k, v in (TINY_BUDGETS if args.tiny else BUDGETS).items()}
    record = {"started_utc": utc_now(), "machine": machine(device), "args": vars(args),
              "budgets_s": budgets, "slices": {}, "projected_paper_s": {}}
    path = out / "gpu_check.json"

    def save():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
        tmp.replace(path)

    log(f"gpu_check: {record['machine']}")
    if device.type == "cuda":
        torch.ones(1024, 1024, device=device) @ torch.ones(1024, 1024, device=device)  # cuBLAS start
        torch.cuda.synchronize()
    root, how = find_mnist_root(args.data_root, args.synthetic)
    mnist = load_mnist(root, device, args.tiny)
    record["data"] = {"mnist": mnist[2], "mnist_from": how,
                      "cifar10": "synthetic tensors of CIFAR-10's shape (timings only)"}
    log(f"data: {mnist[2]} ({how}); CIFAR-10: synthetic tensors of its shape")
    ctx = {"device": device, "clock": Clock(device), "tiny": args.tiny, "mnist": mnist,
           "paper_offline": offline_config.config_for("paper")}
    save()
    old_handler = signal.signal(signal.SIGALRM, _alarm) if hasattr(signal, "SIGALRM") else None
    for name in (args.only or SLICES):
        ctx["budget"] = budgets[name]
        log(f"\n== {name} (budget {budgets[name]:.0f} s) ==")
        entry = {"budget_s": budgets[name], "ok": False}
        start = time.perf_counter()
        left = args.total - (start - started)
        try:
            if left < 10:
                raise SliceTimeout(f"skipped: {left:.0f} s left of the total {args.total:.0f} s")
            if old_handler is not None:  # hard stop: twice the budget, within the total
                signal.alarm(max(1, int(min(2 * budgets[name] + 10, left))))
            entry.update(SLICE_FUNCTIONS[name](ctx))
            entry["ok"] = True
        except Exception as error:  # noqa: BLE001 (record any failure, run the next slice)
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["traceback"] = traceback.format_exc()[-4000:]
            log(f"  FAILED: {entry['error']}")
        finally:
            if old_handler is not None:
                signal.alarm(0)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        entry["seconds"] = time.perf_counter() - start
        record["slices"][name] = entry
        log(f"  ({entry['seconds']:.1f} s)")
        save()
    if old_handler is not None:
        signal.signal(signal.SIGALRM, old_handler)

    def projected(slice_name, key):
        entry = record["slices"].get(slice_name, {})
        return entry.get("projection", {}).get(key, float("nan"))

    offline_total = (projected("offline_sweep", "sweep_chunked_s") + projected("offline_sweep", "curves_s")
                     + projected("offline_smd", "smd_s"))
    online_total = projected("online_mnist", "online_s") + projected("online_cifar10", "online_s")
    record["projected_paper_s"] = {"offline_mnist": offline_total, "online": online_total,
                                   "online_mnist": projected("online_mnist", "online_s"),
                                   "online_cifar10": projected("online_cifar10", "online_s")}
    record["finished_utc"] = utc_now()
    record["seconds"] = time.perf_counter() - started
    save()
    log("\n== projected full time of the paper profile on this device ==")
    for name, seconds in record["projected_paper_s"].items():
        log(f"  {name:16s} {fmt_seconds(seconds)}")
    record["against_floors"] = against_floors(record)
    save()
    log("\n== projections next to their floors (FLOPs at the measured fp32 rate) ==")
    for name, (seconds, floor) in record["against_floors"].items():
        times = f"{seconds / floor:.0f}x the floor" if seconds > 0 and floor > 0 else ""
        log(f"  {name:48s} {fmt_seconds(seconds):>9s}  floor {fmt_seconds(floor):>9s}  {times}")
    failed = [name for name, entry in record["slices"].items() if not entry["ok"]]
    log(f"\n{len(record['slices']) - len(failed)} of {len(record['slices'])} slices ran"
        f"{'; failed: ' + ', '.join(failed) if failed else ''}; {record['seconds']:.0f} s in all; "
        f"record: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Offline meta-optimization of an inverse-time decay schedule on MNIST (Section 3.2).

The schedule ``alpha_t = alpha_0 / (1 + t/K)^beta`` with fixed ``mu`` is
trained from one warm-started MLP for many random ``(alpha_0, beta)``. The
meta-objective of horizon ``T`` is the training loss after ``T`` steps. The
schedule does not depend on ``T``, so **one run of ``max(T)`` steps per sample
passes through every horizon**: the objective of every horizon is recorded
on the way (:func:`horizon_objectives`) instead of training once per horizon.
All samples use the same minibatch sequence (common random numbers), so the
surfaces compare schedules, not batch luck.

From these samples the module draws the meta-objective surfaces (Figure 5,
Gaussian kernel smoothing of log loss on a grid), runs SMD with exact
forward-mode hypergradients (:mod:`shortbias_lib.hypergrad`) from a few
start points, trains each horizon's best schedule for the longest horizon
(Figure 6) and checks the paper's two headline claims.

Results are checkpointed atomically after every chunk of samples and every
few SMD meta steps, so an interrupted run resumes without losing finished
work; the entry point for the CLI and the chapter is :func:`run_offline`.
"""

import math
from pathlib import Path

import numpy as np
import torch

from . import runs
from .errors import DivergenceError
from .hypergrad import Adam, Hyperparameters, hypergradient
from .models import mlp_apply, mlp_init
from .profiles import check_profile, pick
from .training import InverseTime, batched_loss, check_convention, init_state, train, train_batched

CHAPTER = "offline_mnist"
PAPER_HORIZONS = (100, 1000, 5000, 20000)

# Settings shared by every profile (the paper's, Section 3.2 and the authors' code).
BASE = {
    "chapter": CHAPTER,
    "sizes": (784, 100, 100, 10),
    "init_std": 0.1,              # paper; the authors' code uses 0.05
    "momentum": 0.9,
    "batch_size": 100,
    "warm_steps": 50,
    "warm_lr": 0.1,
    "warm_momentum": 0.9,
    "log10_alpha0_range": (-3.0, -0.3),
    "log10_beta_range": (-2.0, 2.3),
    "convention": "paper",        # v <- mu v - alpha g, w <- w + v
    "dtype": "float32",
    "smd_alpha0": 0.01,
    "smd_betas": (0.1, 10.0),
    "smd_clip": 10.0,
    "sampling": "uniform",        # or "halton" (quasi-random, shifted by the seed)
    "refine_per_horizon": 0,      # extra samples around each horizon's optimum (second stage)
    "refine_halfwidth": 0.15,     # their box: +- this fraction of each range around the optimum
    "bootstrap_reps": 200,
}

# Per-profile sizes. ``quick`` divides every time scale (horizons, K) by 10. ``archive``
# keeps the paper's time scale on 2 CPU cores (about 1.5 hours): fewer, better placed
# samples (quasi-random, then a refinement around each horizon's optimum run only to that
# horizon) and fewer SMD meta steps with a larger meta step size; its result is committed
# in ``archive/`` (see ``ARCHIVE_COMMAND``).
SIZES = {
    "smoke": {
        "samples": 12, "chunk": 6, "horizons": (2, 5, 10, 20), "K": 5.0,
        "train_limit": 2000, "test_limit": 500, "objective_examples": 500, "eval_chunk": 500,
        "smd_horizons": (2, 5), "smd_meta_steps": (3, 2), "smd_meta_lr": 0.1,
        "smd_checkpoint_every": 2, "curve_every": 5,
    },
    "quick": {
        "samples": 128, "chunk": 64, "horizons": (10, 100, 500, 2000), "K": 500.0,
        "train_limit": None, "test_limit": None, "objective_examples": 5000, "eval_chunk": 1000,
        "smd_horizons": (10, 100, 500), "smd_meta_steps": (80, 40, 15), "smd_meta_lr": 0.2,
        "smd_checkpoint_every": 10, "curve_every": 50,
    },
    "paper": {
        "samples": 2500, "chunk": 2500, "horizons": PAPER_HORIZONS, "K": 5000.0,  # one pass on a GPU
        "train_limit": None, "test_limit": None, "objective_examples": 60000, "eval_chunk": 2000,
        "smd_horizons": (100, 1000, 5000), "smd_meta_steps": (5000, 5000, 5000), "smd_meta_lr": 0.01,
        "smd_checkpoint_every": 100, "curve_every": 250,
    },
    "archive": {
        "samples": 200, "chunk": 50, "horizons": PAPER_HORIZONS, "K": 5000.0,
        "train_limit": None, "test_limit": None, "objective_examples": 60000, "eval_chunk": 2000,
        "smd_horizons": (100, 1000, 5000), "smd_meta_steps": (300, 80, 30), "smd_meta_lr": 0.2,
        "smd_objective_examples": 10000,
        "smd_checkpoint_every": 5, "curve_every": 250,
        "sampling": "halton", "refine_per_horizon": 40,
    },
    # The paper's own sweep (2,500 uniform samples in one pass, about 4 minutes on an H200)
    # with the ``archive`` profile's SMD; see ``ARCHIVE_GPU_COMMANDS``.
    "archive_gpu": {
        "samples": 2500, "chunk": 2500, "horizons": PAPER_HORIZONS, "K": 5000.0,
        "train_limit": None, "test_limit": None, "objective_examples": 60000, "eval_chunk": 2000,
        "smd_horizons": (100, 1000, 5000), "smd_meta_steps": (300, 80, 30), "smd_meta_lr": 0.2,
        "smd_objective_examples": 10000,
        "smd_checkpoint_every": 5, "curve_every": 250,
    },
}
EXTRA_PROFILES = ("archive", "archive_gpu")
ARCHIVE_DIR = "archive"
ARCHIVE_COMMAND = "python -m shortbias_lib offline_mnist --profile archive --results archive"
# The one command does the whole ``archive_gpu`` run on any device. Its committed file was made
# in two legs, because a lent GPU is held for minutes: the sweep and Figure 6 on the GPU
# (``stop_before_smd``), then the SMD resumed from that checkpoint on a CPU (SMD is a
# sequential, launch-bound loop that gains little from a GPU: about 20 min per seed on one core).
ARCHIVE_GPU_COMMANDS = (
    "python -c \"from shortbias_lib import offline; offline.run_offline('archive_gpu', device='cuda', "
    "results='archive', stop_before_smd=True)\"",
    "python -m shortbias_lib offline_mnist --profile archive_gpu --device cpu --results archive",
)


def config_for(profile, seed=0):
    """The full configuration of a profile (what is saved with, and identifies, a result)."""
    check_profile(profile, extra=EXTRA_PROFILES)
    runs.check_seed(seed)
    config = dict(BASE)
    config.update(SIZES[profile] if profile in EXTRA_PROFILES else pick(profile, SIZES))
    config.setdefault("smd_objective_examples", config["objective_examples"])
    return check_config(config)


def check_config(config):
    """Validate a configuration; returns it with tuples normalised."""
    config = dict(config)
    for key in ("horizons", "smd_horizons", "smd_meta_steps", "sizes", "smd_betas",
                "log10_alpha0_range", "log10_beta_range"):
        config[key] = tuple(config[key])
    horizons = config["horizons"]
    if not horizons or any(int(h) != h or h < 1 for h in horizons) or list(horizons) != sorted(set(horizons)):
        raise ValueError(f"horizons must be increasing positive integers; got {horizons}")
    if any(h not in horizons for h in config["smd_horizons"]):
        raise ValueError(f"smd_horizons must be among horizons {horizons}; got {config['smd_horizons']}")
    if len(config["smd_meta_steps"]) != len(config["smd_horizons"]):
        raise ValueError("smd_meta_steps must give one count per SMD horizon; "
                         f"got {config['smd_meta_steps']} for {config['smd_horizons']}")
    for key in ("samples", "chunk", "batch_size", "objective_examples", "eval_chunk", "curve_every",
                "bootstrap_reps"):
        if int(config[key]) != config[key] or config[key] < 1:
            raise ValueError(f"{key} must be a positive integer; got {config[key]!r}")
    if config["objective_examples"] % config["eval_chunk"]:
        raise ValueError(f"eval_chunk must divide objective_examples ({config['objective_examples']}); "
                         f"got {config['eval_chunk']}")
    config.setdefault("smd_objective_examples", config["objective_examples"])
    if config["smd_objective_examples"] % config["eval_chunk"] or config["smd_objective_examples"] < 1:
        raise ValueError(f"smd_objective_examples must be a positive multiple of eval_chunk "
                         f"({config['eval_chunk']}); got {config['smd_objective_examples']}")
    if config["sampling"] not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}; got {config['sampling']!r}")
    if int(config["refine_per_horizon"]) != config["refine_per_horizon"] or config["refine_per_horizon"] < 0:
        raise ValueError(f"refine_per_horizon must be an integer >= 0; got {config['refine_per_horizon']!r}")
    if not 0 < config["refine_halfwidth"] <= 0.5:
        raise ValueError(f"refine_halfwidth must lie in (0, 0.5]; got {config['refine_halfwidth']!r}")
    if not config["K"] > 0:
        raise ValueError(f"K must be > 0; got {config['K']!r}")
    for key in ("log10_alpha0_range", "log10_beta_range"):
        low, high = config[key]
        if not low < high:
            raise ValueError(f"{key} must be (low, high) with low < high; got {config[key]}")
    if config["dtype"] not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {config['dtype']!r}")
    check_convention(config["convention"])
    return config


# ---------------------------------------------------------------- randomness

def _seed(*keys):
    """A 63-bit seed derived from integer keys (seed, purpose, ...)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> 1)


SAMPLINGS = ("uniform", "halton")


def halton(n, seed, dims=2):
    """``n`` points of the Halton sequence (bases 2, 3, 5, ...) in ``[0, 1)^dims``, shifted
    modulo 1 by a uniform vector drawn from ``seed`` (Cranley-Patterson rotation), so that
    every seed gives a different, equally even design. Shape ``(n, dims)``."""
    if n < 1:
        raise ValueError(f"samples must be >= 1; got {n}")
    primes = (2, 3, 5, 7, 11, 13)[:dims]
    points = np.zeros((n, dims))
    for d, base in enumerate(primes):
        index = np.arange(1, n + 1)
        scale = 1.0
        while np.any(index > 0):
            scale /= base
            index, digit = np.divmod(index, base)
            points[:, d] += digit * scale
    shift = np.random.default_rng(_seed(seed, 5)).uniform(size=dims)
    return (points + shift) % 1.0


def sample_hyperparameters(n, seed, log10_alpha0_range=(-3.0, -0.3), log10_beta_range=(-2.0, 2.3),
                           sampling="uniform"):
    """``n`` samples of ``(log10 alpha_0, log10 beta)`` in the authors' ranges:
    independent uniform draws, or a shifted Halton design (``sampling="halton"``)."""
    if n < 1:
        raise ValueError(f"samples must be >= 1; got {n}")
    if sampling == "uniform":
        rng = np.random.default_rng(_seed(seed, 3))
        return (rng.uniform(*log10_alpha0_range, size=n), rng.uniform(*log10_beta_range, size=n))
    if sampling != "halton":
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}; got {sampling!r}")
    low = np.array([log10_alpha0_range[0], log10_beta_range[0]], dtype=np.float64)
    width = np.array([log10_alpha0_range[1], log10_beta_range[1]], dtype=np.float64) - low
    points = low + width * halton(n, seed)
    return points[:, 0], points[:, 1]


def refinement_samples(n, seed, horizon_index, center, halfwidth, log10_alpha0_range, log10_beta_range):
    """``n`` Halton points in a box around ``center = (log10 alpha_0, log10 beta)``: ``+-halfwidth``
    times each range, moved (not cut) to stay inside the ranges."""
    ranges = np.array([log10_alpha0_range, log10_beta_range], dtype=np.float64)
    half = halfwidth * (ranges[:, 1] - ranges[:, 0])
    center = np.clip(np.asarray(center, dtype=np.float64), ranges[:, 0] + half, ranges[:, 1] - half)
    points = center - half + 2 * half * halton(n, _seed(seed, 6, horizon_index))
    return points[:, 0], points[:, 1]


class StepBatches:
    """Minibatch ``t`` of a fixed sequence (epochs of seeded permutations), with random access.

    Batch ``t`` depends only on ``(seed, t)``, so a run of T steps sees the
    first T batches of a longer run, every chunk of samples sees the same
    batches, and a resumed run sees what an uninterrupted one would.
    """

    def __init__(self, images, labels, batch_size, seed):
        if not 1 <= batch_size <= len(labels):
            raise ValueError(f"batch_size must lie in [1, {len(labels)}]; got {batch_size}")
        self.images, self.labels = images, labels
        self.batch_size, self.seed = batch_size, seed
        self.per_epoch = len(labels) // batch_size
        self._epoch, self._perm = None, None

    def indices(self, t):
        epoch, k = divmod(int(t), self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(_seed(self.seed, epoch))
            self._perm = torch.randperm(len(self.labels), generator=generator).to(self.labels.device)
            self._epoch = epoch
        return self._perm[k * self.batch_size:(k + 1) * self.batch_size]

    def __call__(self, t):
        index = self.indices(t)
        return self.images[index], self.labels[index]

    def take(self, start, n):
        """Batches ``start, ..., start + n - 1`` as a list."""
        return [self(start + i) for i in range(n)]


# ---------------------------------------------------------------- the experiment's pieces

def warm_start(params, batches, steps=50, lr=0.1, momentum=0.9, convention="paper", apply=mlp_apply):
    """``steps`` of SGD with momentum at a constant rate; returns a state at schedule step 0.

    The velocity is kept (training continues), the step counter restarts so
    the decay schedule starts at ``t = 0``.
    """
    result = train(apply, params, batches, steps, lr, momentum, convention, raise_on_divergence=True)
    return init_state(result.state.params, result.state.velocity, step=0)


def seeded_warm_start(config, seed, images, labels, dtype=torch.float32, device=None):
    """The experiment's warm start from its seed: the MLP drawn with key ``(seed, 0)``, then
    :func:`warm_start` on minibatches of key ``(seed, 1)`` (``config`` gives the sizes)."""
    generator = torch.Generator().manual_seed(_seed(seed, 0))
    params = mlp_init(generator, tuple(config["sizes"]), config["init_std"], dtype, device)
    return warm_start(params, StepBatches(images, labels, config["batch_size"], _seed(seed, 1)),
                      config["warm_steps"], config["warm_lr"], config["warm_momentum"],
                      config["convention"])


def warm_arrays(state):
    """A warm start as result-file arrays ``warm_params_i``, ``warm_velocity_i``."""
    arrays = {}
    for i, (p, v) in enumerate(zip(state.params, state.velocity)):
        arrays[f"warm_params_{i}"] = p.cpu().numpy()
        arrays[f"warm_velocity_{i}"] = v.cpu().numpy()
    return arrays


def warm_state(arrays, device=None):
    """The warm start stored by :func:`warm_arrays`, as a :class:`~shortbias_lib.training.TrainState`."""
    n = len([k for k in arrays if k.startswith("warm_params_")])
    return init_state(tuple(torch.as_tensor(arrays[f"warm_params_{i}"], device=device) for i in range(n)),
                      tuple(torch.as_tensor(arrays[f"warm_velocity_{i}"], device=device) for i in range(n)))


def horizon_objectives(state, alpha0, beta, K, horizons, batches, objective, momentum=0.9,
                       convention="paper", eval_chunk=1000, apply=mlp_apply):
    """Meta-objectives of every horizon from ONE run per schedule.

    Trains S schedules ``alpha_0 / (1 + t/K)^beta`` (tensors of shape (S,))
    for ``max(horizons)`` steps from ``state`` and records the mean loss on
    ``objective = (images, labels)`` after each horizon. Returns
    ``(values (S, H), diverged_step (S,))``; a diverged run has NaN from
    its divergence on and its step (else -1).
    """
    images, labels = objective

    def eval_fn(params):
        return batched_loss(apply, params, images, labels, chunk=eval_chunk)

    schedule = InverseTime(alpha0, beta, K)
    result = train_batched(apply, state.params, schedule, int(max(horizons)), batches,
                           momentum=momentum, convention=convention,
                           record_steps=list(horizons), velocity=state.velocity, eval_fn=eval_fn)
    return result.losses, result.diverged_step


def batched_metrics(params, images, labels, chunk=2000, apply=mlp_apply):
    """Mean loss and error rate for each of S stacked parameter sets: two arrays of shape (S,)."""
    from torch.func import vmap

    def one(p, x, y):
        logits = apply(p, x)
        loss = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
        return loss, (logits.argmax(-1) != y).sum()

    run = vmap(one, in_dims=(0, None, None))
    loss = wrong = 0.0
    with torch.no_grad():
        for s in range(0, len(labels), chunk):
            a, b = run(tuple(params), images[s:s + chunk], labels[s:s + chunk])
            loss, wrong = loss + a.double(), wrong + b.double()
    return (loss / len(labels)).cpu().numpy(), (wrong / len(labels)).cpu().numpy()


def train_curves(state, alpha0, beta, K, steps, every, batches, train_eval, test_eval,
                 momentum=0.9, convention="paper", eval_chunk=2000, apply=mlp_apply):
    """Figure 6: train S schedules for ``steps`` and record, every ``every`` steps,
    training loss and error (on ``train_eval``) and test error (on ``test_eval``).

    Returns a dict of arrays: ``steps`` (R,), ``train_loss``, ``train_error``,
    ``test_error`` (S, R) (NaN once a run diverged) and ``lr`` (S, R).
    """
    record = sorted(set(list(range(0, steps + 1, every)) + [steps]))
    rows = []

    def eval_fn(params):
        loss, error = batched_metrics(params, *train_eval, chunk=eval_chunk, apply=apply)
        _, test_error = batched_metrics(params, *test_eval, chunk=eval_chunk, apply=apply)
        rows.append((loss, error, test_error))
        return torch.as_tensor(loss, device=params[0].device)

    schedule = InverseTime(alpha0, beta, K)
    result = train_batched(apply, state.params, schedule, steps, batches, momentum=momentum,
                           convention=convention, record_steps=record, velocity=state.velocity,
                           eval_fn=eval_fn)
    loss, error, test_error = (np.stack(col, axis=1) for col in zip(*rows))
    bad = np.isnan(result.losses)
    for array in (loss, error, test_error):
        array[bad] = np.nan
    t = np.asarray(record, dtype=np.float64)
    lr = (np.asarray(alpha0, dtype=np.float64)[:, None]
          / (1.0 + t[None, :] / K) ** np.asarray(beta, dtype=np.float64)[:, None])
    return {"steps": np.asarray(record), "train_loss": loss, "train_error": error,
            "test_error": test_error, "lr": lr}


def capped_log_loss(values, cap):
    """``log10(min(L, cap))`` with diverged (NaN/inf) runs at ``cap``: the plotted surface value."""
    values = np.asarray(values, dtype=np.float64)
    return np.log10(np.where(np.isfinite(values), np.minimum(values, cap), cap))


def smooth_surface(x, y, z, x_range, y_range, grid=80, bandwidth=None, weights=None):
    """Gaussian kernel (Nadaraya-Watson) smoothing of scattered ``z(x, y)`` on a grid.

    ``bandwidth`` is the kernel's standard deviation as a fraction of each
    axis range (default ``1/sqrt(n)``, about the spacing of n random points).
    ``weights`` (n,) multiply each sample's kernel (a bootstrap resample is
    the weights = multiplicities). Returns ``(grid_x (G,), grid_y (G,), Z (G, G))``
    with ``Z[i, j]`` at ``(grid_x[j], grid_y[i])``.
    """
    x, y, z = (np.asarray(a, dtype=np.float64) for a in (x, y, z))
    if not (x.shape == y.shape == z.shape) or x.size == 0:
        raise ValueError("x, y and z must be non-empty arrays of the same shape")
    if bandwidth is None:
        bandwidth = 1.0 / math.sqrt(x.size)
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0; got {bandwidth!r}")
    weights = np.ones_like(z) if weights is None else np.asarray(weights, dtype=np.float64)
    gx, gy = np.linspace(*x_range, grid), np.linspace(*y_range, grid)
    sx, sy = bandwidth * (x_range[1] - x_range[0]), bandwidth * (y_range[1] - y_range[0])
    wx = np.exp(-0.5 * ((gx[:, None] - x[None, :]) / sx) ** 2)      # (G, n)
    wy = np.exp(-0.5 * ((gy[:, None] - y[None, :]) / sy) ** 2)      # (G, n)
    numerator = (wy * (weights * z)) @ wx.T                           # (G, G): sum_n wy w z wx
    denominator = (wy * weights) @ wx.T
    return gx, gy, numerator / np.maximum(denominator, 1e-300)


def surface_grids(arrays, config, grid=80, bandwidth=None, weights=None):
    """Smoothed ``log10`` meta-objective of every horizon: ``(grid_log_beta, grid_log_alpha0, [Z_h])``.

    Each horizon uses the samples that were run at least that long (a
    refinement sample of a short horizon is not run to the longer ones).
    Diverged runs and runs that end above the warm start's loss count as
    the warm start's loss (the cap), so the surface shows them as "no progress".
    """
    cap = float(arrays["warm_objective"])
    steps_run = sample_run_steps(arrays, config)
    weights = np.ones(len(steps_run)) if weights is None else np.asarray(weights, dtype=np.float64)
    surfaces = []
    for k, h in enumerate(config["horizons"]):
        use = steps_run >= int(h)
        z = capped_log_loss(arrays["objective"][use, k], cap)
        gx, gy, Z = smooth_surface(arrays["log10_beta"][use], arrays["log10_alpha0"][use], z,
                                   config["log10_beta_range"], config["log10_alpha0_range"],
                                   grid=grid, bandwidth=bandwidth or 1.0 / math.sqrt(use.sum()),
                                   weights=weights[use])
        surfaces.append(Z)
    return gx, gy, surfaces


def sample_run_steps(arrays, config):
    """How many steps each sample was trained (older files: every sample the longest horizon)."""
    if "run_steps" in arrays:
        return np.asarray(arrays["run_steps"])
    return np.full(len(arrays["log10_alpha0"]), int(max(config["horizons"])))


def surface_minimum(gx, gy, Z):
    """The grid point where the smoothed surface ``Z`` is lowest: ``(i, j)`` with
    ``Z[i, j]`` at ``(gx[j], gy[i])``."""
    return np.unravel_index(np.argmin(Z), Z.shape)


def surface_optima(arrays, config, grid=80, weights=None):
    """Each horizon's best ``(log10 alpha_0, log10 beta)`` read off its smoothed surface,
    and the longest horizon's smoothed loss at every horizon's optimum.

    Returns ``(optima (H, 2), log_loss_at_longest (H,))``: the second is the
    smoothed ``log10`` loss after the longest horizon of training with each
    horizon's best schedule (the paper's second claim compares these).
    """
    gx, gy, surfaces = surface_grids(arrays, config, grid, weights=weights)
    cells = [surface_minimum(gx, gy, Z) for Z in surfaces]
    optima = np.array([[gy[i], gx[j]] for i, j in cells])
    at_longest = np.array([surfaces[-1][i, j] for i, j in cells])
    return optima, at_longest


def bootstrap_optima(arrays, config, reps, seed, grid=80):
    """Bootstrap over samples of :func:`surface_optima`: ``reps`` resamples with replacement
    (each a multiplicity-weighted smoothing). Returns ``(optima (B, H, 2), log_loss (B, H))``."""
    rng = np.random.default_rng(_seed(seed, 7))
    n = len(arrays["log10_alpha0"])
    optima, losses = [], []
    for _ in range(int(reps)):
        counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        o, at = surface_optima(arrays, config, grid, weights=counts)
        optima.append(o)
        losses.append(at)
    return np.array(optima), np.array(losses)


def best_per_horizon(values):
    """Index of the lowest finite objective of each horizon (column); -1 if none is finite."""
    values = np.asarray(values, dtype=np.float64)
    masked = np.where(np.isfinite(values), values, np.inf)
    best = masked.argmin(axis=0)
    best[~np.isfinite(masked.min(axis=0))] = -1
    return best


# ---------------------------------------------------------------- SMD

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


# ---------------------------------------------------------------- the whole experiment

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
        with runs.run_lock(path):  # a second run of this file refuses instead of mixing checkpoints
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
        arrays["warm_objective"] = np.asarray(
            batched_metrics(tuple(p.unsqueeze(0) for p in warm.params), *objective, chunk_eval)[0][0])
        save("warm start")
    state = warm_state(arrays, device)

    # 2. the sweep: chunks of samples, one run of max(horizons) steps each.
    sweep_batches = StepBatches(images, labels, config["batch_size"], _seed(seed, 2))
    chunk = int(config["chunk"])
    done = int(arrays["samples_done"])
    bar = runs.progress(total=S, initial=done, desc="offline samples", disable=None if show_progress else True)
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
        curves = train_curves(state, torch.as_tensor(10.0 ** log_a), torch.as_tensor(10.0 ** log_b), K,
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

        bar = runs.progress(total=steps, initial=0 if previous is None else len(previous["meta_loss"]),
                            desc=f"SMD T={h}, beta0={beta0:g}", disable=None if show_progress else True)
        # One unbatched network: its small operations gain nothing from several CPU
        # threads and slow down badly when the cores are shared, so SMD uses one.
        threads = torch.get_num_threads()
        if device.type == "cpu":
            torch.set_num_threads(1)
        try:
            smd_trajectory(state, config["smd_alpha0"], beta0, K, h, steps,
                           StepBatches(images, labels, config["batch_size"], _seed(seed, 4, j)),
                           objective_batches, mu, config["smd_meta_lr"], config["smd_clip"], conv,
                           resume=previous, checkpoint=checkpoint,
                           checkpoint_every=config["smd_checkpoint_every"], progress=bar)
        finally:
            torch.set_num_threads(threads)
        bar.close()

    _add_summary(arrays, config)
    meta = dict(started, stage="finished", finished_utc=runs.utc_now())
    runs.save_result(path, arrays, meta)
    partial.unlink(missing_ok=True)
    return arrays, json_roundtrip(meta)


def json_roundtrip(meta):
    """``meta`` as it reads back from a file (tuples become lists)."""
    import json

    return json.loads(json.dumps(meta, sort_keys=True, default=str))


def _add_summary(arrays, config):
    """The table's numbers and the paper's two claims, stored with the result.

    Both claims are estimated from the smoothed surfaces (each horizon's
    optimum, not one lucky sample), with 95% bootstrap intervals over samples
    (:func:`claims`): the ratio of the best beta of the shortest and longest
    horizons, and the training loss after the longest horizon of the shortest
    horizon's best schedule over the longest one's. The best single samples'
    ratios are kept beside them (``sample_*``). A pure function of the raw
    arrays: :func:`load_offline` recomputes it, so a result file always shows
    the current definitions.
    """
    best = arrays["best_index"]
    idx = np.where(best >= 0, best, 0)
    arrays["best_alpha0"] = np.where(best >= 0, 10.0 ** arrays["log10_alpha0"][idx], np.nan)
    arrays["best_beta"] = np.where(best >= 0, 10.0 ** arrays["log10_beta"][idx], np.nan)
    arrays["best_objective"] = np.array([arrays["objective"][i, k] if i >= 0 else np.nan
                                         for k, i in enumerate(best)])
    arrays["final_train_loss"] = arrays["curve_train_loss"][:, -1]
    arrays["final_train_error"] = arrays["curve_train_error"][:, -1]
    arrays["final_test_error"] = arrays["curve_test_error"][:, -1]
    arrays["sample_beta_ratio"] = np.asarray(arrays["best_beta"][0] / arrays["best_beta"][-1])
    arrays["sample_loss_ratio"] = np.asarray(arrays["final_train_loss"][0] / arrays["final_train_loss"][-1])
    arrays.update(claims(arrays))
    horizons = [int(h) for h in config["horizons"]]
    arrays["reported_names"] = np.array([
        f"best beta, {horizons[0]}- over {horizons[-1]}-step horizon",
        f"train loss at {horizons[-1]} steps, {horizons[0]}-step best over {horizons[-1]}-step best",
    ])
    arrays["reported_ours"] = np.array([arrays["beta_ratio"], arrays["loss_ratio"]], dtype=np.float64)
    arrays["reported_low"] = np.array([arrays["beta_ratio_interval"][0], arrays["loss_ratio_interval"][0]])
    arrays["reported_high"] = np.array([arrays["beta_ratio_interval"][1], arrays["loss_ratio_interval"][1]])
    arrays["reported_paper"] = np.array([100.0, 1000.0])
    arrays["reported_kinds"] = np.array(["lower_bound", "lower_bound"])


def claims(arrays, level=0.95):
    """The two claims from a result's surface optima, bootstrap and Figure 6 arrays.

    ``beta_ratio``: best beta of the first over the last horizon (surface optima);
    ``loss_ratio``: the longest horizon's smoothed loss at the first horizon's
    optimum over that at its own optimum; each with a ``level`` bootstrap
    percentile interval (``*_interval``). ``trained_loss_ratio``: the same ratio
    from actually training the two optima (Figure 6), a check of the smoothed
    value (smoothing flattens the deepest valleys, so it tends to understate it).
    """
    tails = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    optimum, boot = arrays["surface_log10"], arrays["bootstrap_log10"]
    boot_beta = 10.0 ** (boot[:, 0, 1] - boot[:, -1, 1])
    boot_loss = 10.0 ** (arrays["bootstrap_log_loss"][:, 0] - arrays["bootstrap_log_loss"][:, -1])
    trained = arrays["surface_curve_train_loss"][:, -1]
    return {"beta_ratio": np.asarray(10.0 ** (optimum[0, 1] - optimum[-1, 1])),
            "beta_ratio_interval": np.percentile(boot_beta, tails),
            "loss_ratio": np.asarray(10.0 ** (arrays["surface_log_loss"][0] - arrays["surface_log_loss"][-1])),
            "loss_ratio_interval": np.percentile(boot_loss, tails),
            "trained_loss_ratio": np.asarray(trained[0] / trained[-1])}


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
    with its summary (:func:`_add_summary`) recomputed from the raw arrays."""
    arrays, meta = runs.load_result(path)
    if meta.get("config", {}).get("chapter") != CHAPTER:
        raise ValueError(f"path must be a result file of the offline experiment; {path} is not")
    _add_summary(arrays, meta["config"])
    return arrays, meta


def refresh_summary(path):
    """Rewrite a finished result file with its summary recomputed by the current code
    (raw arrays untouched; the commit that did it is recorded as ``summary_commit``)."""
    arrays, meta = load_offline(path)
    meta["summary_commit"] = runs.git_commit()
    runs.save_result(path, arrays, meta)
    return arrays, meta


def summary_rows(arrays, config, level=0.95):
    """Per-horizon table rows: the surface optimum ``alpha0``, ``beta`` with ``level`` bootstrap
    intervals (``*_low``, ``*_high``), the best sample's (``sample_*``, ``objective`` at T), and
    the surface optimum's training loss and errors after the longest horizon (Figure 6)."""
    tails = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    rows = []
    for k, h in enumerate(config["horizons"]):
        boot = 10.0 ** arrays["bootstrap_log10"][:, k]
        (a_low, b_low), (a_high, b_high) = np.percentile(boot, tails, axis=0)
        rows.append({"horizon": int(h),
                     "alpha0": float(10.0 ** arrays["surface_log10"][k, 0]),
                     "alpha0_low": float(a_low), "alpha0_high": float(a_high),
                     "beta": float(10.0 ** arrays["surface_log10"][k, 1]),
                     "beta_low": float(b_low), "beta_high": float(b_high),
                     "beta_edge": _edge(arrays["surface_log10"][k, 1], config["log10_beta_range"]),
                     "sample_alpha0": float(arrays["best_alpha0"][k]),
                     "sample_beta": float(arrays["best_beta"][k]),
                     "objective": float(arrays["best_objective"][k]),
                     "final_train_loss": float(arrays["surface_curve_train_loss"][k, -1]),
                     "final_train_error": float(arrays["surface_curve_train_error"][k, -1]),
                     "final_test_error": float(arrays["surface_curve_test_error"][k, -1])})
    return rows


def _edge(value, value_range):
    """``"lower"`` or ``"upper"`` if ``value`` is at that end of ``value_range`` (a grid end), else ``""``."""
    low, high = value_range
    return "lower" if value <= low + 1e-9 else "upper" if value >= high - 1e-9 else ""


def edge_sentence(arrays, config):
    """A sentence naming the horizons whose optimal beta lies at an end of the sampled range
    (the surface still falls beyond it, so that optimum is a bound), or ``""`` if none does."""
    rows = [row for row in summary_rows(arrays, config) if row["beta_edge"]]
    if not rows:
        return ""
    parts = [f"the {row['horizon']}-step horizon ({row['beta_edge']} end, beta = {row['beta']:.3g})"
             for row in rows]
    return ("The optimal decay exponent lies on the boundary of the authors' range for "
            + " and ".join(parts) + ": the surface is still falling there, so such an optimum is a "
            "bound rather than a value, a ratio involving it is set by the range, and the end of its "
            "interval away from the boundary is the informative number.")


def summary_table(arrays, config):
    """Markdown table of :func:`summary_rows` (for the chapter)."""
    long = int(config["horizons"][-1])
    lines = ["| horizon $T$ | best $\\alpha_0$ [95%] | best $\\beta$ [95%] | best sample "
             "$(\\alpha_0, \\beta)$ | its loss at $T$ | "
             f"training loss at {long} | training error at {long} | test error at {long} |",
             "|---|---|---|---|---|---|---|---|"]
    for row in summary_rows(arrays, config):
        lines.append(
            f"| {row['horizon']} | {row['alpha0']:.3g} [{row['alpha0_low']:.2g}, {row['alpha0_high']:.2g}] | "
            f"{row['beta']:.3g} [{row['beta_low']:.2g}, {row['beta_high']:.2g}] | "
            f"({row['sample_alpha0']:.3g}, {row['sample_beta']:.3g}) | {row['objective']:.3g} | "
            f"{row['final_train_loss']:.3g} | {row['final_train_error']:.2%} | {row['final_test_error']:.2%} |")
    return "\n".join(lines)


def archive_path(seed=0, profile="archive"):
    """The committed result of an archived profile (``archive`` or ``archive_gpu``: the paper's
    time scale)."""
    if profile not in EXTRA_PROFILES:
        raise ValueError(f"profile must be one of {EXTRA_PROFILES}; got {profile!r}")
    return runs.REPO_ROOT / ARCHIVE_DIR / f"{CHAPTER}_{profile}_seed{seed}.npz"


__all__ = ["BASE", "SIZES", "config_for", "check_config", "sample_hyperparameters", "StepBatches",
           "warm_start", "horizon_objectives", "batched_metrics", "train_curves", "capped_log_loss",
           "smooth_surface", "best_per_horizon", "smd_trajectory", "smd_log10", "run_experiment",
           "run_offline", "load_offline", "result_path", "smd_trajectories", "summary_rows"]

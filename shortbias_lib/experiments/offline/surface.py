"""What the offline experiment's samples say: the smoothed meta-objective surfaces
(Figure 5), each horizon's optimum with a bootstrap over samples, the paper's two claims,
and the result's summary and table."""

import math
from dataclasses import dataclass, field

import numpy as np

from ...engine.batches import derived_seed


def capped_log_loss(values, cap):
    """``log10(min(L, cap))`` with diverged (NaN/inf) runs at ``cap``: the plotted surface value."""
    values = np.asarray(values, dtype=np.float64)
    return np.log10(np.where(np.isfinite(values), np.minimum(values, cap), cap))


def smooth_surface(x, y, z, x_range, y_range, grid=80, bandwidth=None, weights=None):
    """Gaussian kernel (Nadaraya-Watson) smoothing of scattered ``z(x, y)`` on a grid.

    ``bandwidth`` is the kernel's standard deviation as a fraction of each
    axis range (default ``1/sqrt(n)``, about the spacing of n random points).
    ``weights`` (n,) multiply each sample's kernel (a bootstrap resample is
    the weights = multiplicities); ``weights`` (B, n) smooth B resamples at once.
    Returns ``(grid_x (G,), grid_y (G,), Z)``, ``Z`` (G, G) or (B, G, G) with
    ``Z[..., i, j]`` at ``(grid_x[j], grid_y[i])``.
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
    if weights.ndim == 1:
        numerator = (wy * (weights * z)) @ wx.T                       # (G, G): sum_n wy w z wx
        denominator = (wy * weights) @ wx.T
    else:   # B resamples: one product with the (G*G, n) kernels of all cells
        kernels = (wy[:, None, :] * wx[None, :, :]).reshape(grid * grid, -1)
        numerator = ((weights * z) @ kernels.T).reshape(-1, grid, grid)
        denominator = (weights @ kernels.T).reshape(-1, grid, grid)
    return gx, gy, numerator / np.maximum(denominator, 1e-300)


def surface_grids(arrays, config, grid=80, bandwidth=None, weights=None, scale=1.0):
    """Smoothed ``log10`` meta-objective of every horizon: ``(grid_log_beta, grid_log_alpha0, [Z_h])``.

    Each horizon uses the samples that were run at least that long (a
    refinement sample of a short horizon is not run to the longer ones).
    Diverged runs and runs that end above the warm start's loss count as
    the warm start's loss (the cap), so the surface shows them as "no progress".
    The bandwidth (default ``1/sqrt(n)`` of the horizon's n samples) is multiplied
    by ``scale``; ``weights`` (n,) or (B, n) as in :func:`smooth_surface`.
    """
    cap = float(arrays["warm_objective"])
    steps_run = sample_run_steps(arrays, config)
    weights = np.ones(len(steps_run)) if weights is None else np.asarray(weights, dtype=np.float64)
    surfaces = []
    for k, h in enumerate(config["horizons"]):
        use = steps_run >= int(h)
        z = capped_log_loss(arrays["objective"][use, k], cap)
        gx, gy, Z = smooth_surface(arrays["log10_beta"][use], arrays["log10_alpha0"][use], z,
                                   config["log10_beta_range"], config["log10_alpha0_range"], grid=grid,
                                   bandwidth=scale * (bandwidth or 1.0 / math.sqrt(use.sum())),
                                   weights=weights[..., use])
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


def surface_optima(arrays, config, grid=80, weights=None, scale=1.0):
    """Each horizon's best ``(log10 alpha_0, log10 beta)`` read off its smoothed surface,
    and the longest horizon's smoothed loss at every horizon's optimum.

    Returns ``(optima (H, 2), log_loss_at_longest (H,))``: the second is the
    smoothed ``log10`` loss after the longest horizon of training with each
    horizon's best schedule (the paper's second claim compares these).
    With ``weights`` (B, n) (B resamples), ``(optima (B, H, 2), log_loss (B, H))``;
    ``scale`` multiplies the bandwidth (:func:`surface_grids`).
    """
    gx, gy, surfaces = surface_grids(arrays, config, grid, weights=weights, scale=scale)
    # argmin of each flattened surface: the first lowest cell, as :func:`surface_minimum`
    cells = np.stack([Z.reshape(*Z.shape[:-2], -1).argmin(axis=-1) for Z in surfaces], axis=-1)   # (..., H)
    optima = np.stack([gy[cells // grid], gx[cells % grid]], axis=-1)
    longest = surfaces[-1].reshape(*surfaces[-1].shape[:-2], -1)
    return optima, np.take_along_axis(longest, cells, axis=-1)


def bootstrap_optima(arrays, config, reps, seed, grid=80, chunk=500):
    """Bootstrap over samples of :func:`surface_optima`: ``reps`` resamples with replacement
    (each a multiplicity-weighted smoothing, ``chunk`` at a time). Returns
    ``(optima (B, H, 2), log_loss (B, H))``."""
    rng = np.random.default_rng(derived_seed(seed, 7))
    n = len(arrays["log10_alpha0"])
    counts = np.array([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(int(reps))],
                      dtype=np.float64).reshape(int(reps), n)
    parts = [surface_optima(arrays, config, grid, weights=counts[s:s + chunk]) for s in range(0, len(counts), chunk)]
    if not parts:
        return np.zeros((0, len(config["horizons"]), 2)), np.zeros((0, len(config["horizons"])))
    return np.concatenate([o for o, _ in parts]), np.concatenate([at for _, at in parts])


def best_per_horizon(values):
    """Index of the lowest finite objective of each horizon (column); -1 if none is finite."""
    values = np.asarray(values, dtype=np.float64)
    masked = np.where(np.isfinite(values), values, np.inf)
    best = masked.argmin(axis=0)
    best[~np.isfinite(masked.min(axis=0))] = -1
    return best


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


# The smoothing bandwidths tried around the chosen one (factors of it), and the paper's bounds.
BANDWIDTH_SCALES = (0.5, 0.71, 1.0, 1.41, 2.0)
CLAIM_BOUNDS = {"beta_ratio": 100.0, "loss_ratio": 1000.0}


@dataclass(frozen=True)
class ClaimBand:
    """One claim of one run under each choice: the surface estimate ``value`` (chosen bandwidth),
    its bootstrap interval, its range over bandwidths, and other estimators' values."""

    name: str
    bound: float
    value: float
    bootstrap: tuple
    reps: int
    bandwidth: tuple
    scales: tuple
    estimators: dict = field(default_factory=dict)

    def values(self):
        """Every number of the band: the value, both interval ends, the bandwidth range, the estimators."""
        return [self.value, *self.bootstrap, *self.bandwidth, *self.estimators.values()]


def k_best_ratios(arrays, config, k):
    """Both claims from the ``k`` best samples of each horizon (``k = 1``: the best sample), among
    the samples trained to the longest horizon: ``(beta ratio, loss ratio)``, geometric means of
    beta and of the loss after the longest horizon (capped as on the surfaces)."""
    cap = float(arrays["warm_objective"])
    full = sample_run_steps(arrays, config) >= int(config["horizons"][-1])
    log_loss = capped_log_loss(arrays["objective"][full], cap)            # (n, H)
    best = np.argsort(log_loss, axis=0, kind="stable")[:int(k)]            # (k, H)
    log_beta = arrays["log10_beta"][full][best].mean(axis=0)
    at_longest = log_loss[best, -1].mean(axis=0)
    return 10.0 ** (log_beta[0] - log_beta[-1]), 10.0 ** (at_longest[0] - at_longest[-1])


def claim_bands(arrays, config, seed, reps=1000, scales=BANDWIDTH_SCALES, k=10, level=0.95, grid=80):
    """The two claims of a result (:func:`claims`) under every choice, ``{name: ClaimBand}``.

    A ``reps`` bootstrap over samples (:func:`bootstrap_optima`; its first
    draws are those stored with the result), the surface estimate at each
    bandwidth ``scales`` times the chosen one, and other estimators: the best
    sample and the mean of the ``k`` best (:func:`k_best_ratios`), and for the
    loss the two surface optima trained for the longest horizon (Figure 6).
    """
    tails = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    # The claims compare the first and the last horizon only: smooth those two.
    arrays = {**arrays, "objective": np.asarray(arrays["objective"])[:, [0, -1]],
              "run_steps": sample_run_steps(arrays, config)}
    config = {**config, "horizons": [config["horizons"][0], config["horizons"][-1]]}
    optima, log_loss = bootstrap_optima(arrays, config, reps, seed, grid)
    boot = {"beta_ratio": 10.0 ** (optima[:, 0, 1] - optima[:, -1, 1]),
            "loss_ratio": 10.0 ** (log_loss[:, 0] - log_loss[:, -1])}
    by_scale = {"beta_ratio": [], "loss_ratio": []}
    for scale in scales:
        o, at = surface_optima(arrays, config, grid, scale=scale)
        by_scale["beta_ratio"].append(10.0 ** (o[0, 1] - o[-1, 1]))
        by_scale["loss_ratio"].append(10.0 ** (at[0] - at[-1]))
    o, at = surface_optima(arrays, config, grid)
    value = {"beta_ratio": 10.0 ** (o[0, 1] - o[-1, 1]), "loss_ratio": 10.0 ** (at[0] - at[-1])}
    (beta_1, loss_1), (beta_k, loss_k) = k_best_ratios(arrays, config, 1), k_best_ratios(arrays, config, k)
    estimators = {"beta_ratio": {"best sample": beta_1, f"mean of {k} best": beta_k},
                  "loss_ratio": {"best sample": loss_1, f"mean of {k} best": loss_k}}
    if "surface_curve_train_loss" in arrays:
        trained = arrays["surface_curve_train_loss"][:, -1]
        estimators["loss_ratio"] = {"trained optima": float(trained[0] / trained[-1]), **estimators["loss_ratio"]}
    return {name: ClaimBand(name, CLAIM_BOUNDS[name], float(value[name]),
                            tuple(float(v) for v in np.percentile(boot[name], tails)), int(reps),
                            (float(min(by_scale[name])), float(max(by_scale[name]))), tuple(scales),
                            {key: float(v) for key, v in estimators[name].items()})
            for name in CLAIM_BOUNDS}


def band_verdict(bands):
    """How much of the claims' band (every number of each :class:`ClaimBand` in ``bands``, e.g. one
    per seed) clears the bound: ``(verdict, clearing, total, low, high)``."""
    values = np.array([v for band in bands for v in band.values()], dtype=np.float64)
    bound = bands[0].bound
    clearing, low, high = int((values > bound).sum()), float(values.min()), float(values.max())
    if clearing == len(values):
        verdict = "holds across the whole band"
    elif clearing == 0:
        verdict = "not met anywhere in the band"
    else:
        verdict = f"holds for {clearing} of the band's {len(values)} numbers only"
    return verdict, clearing, len(values), low, high


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


def add_summary(arrays, config):
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

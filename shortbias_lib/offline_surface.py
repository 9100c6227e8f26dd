"""What the offline experiment's samples say: the smoothed meta-objective surfaces
(Figure 5), each horizon's optimum with a bootstrap over samples, the paper's two claims,
and the result's summary and table."""

import math

import numpy as np

from .offline_design import derived_seed


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
    rng = np.random.default_rng(derived_seed(seed, 7))
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

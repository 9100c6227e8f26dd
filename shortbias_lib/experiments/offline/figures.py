"""Figures 5 and 6 and the tables of the offline experiment, drawn from a result of
:mod:`shortbias_lib.experiments.offline.experiment`."""

import os

import numpy as np

from ... import report, runs
from .config import PAPER_HORIZONS, with_smd_annealing
from .smd import collapse_start, smd_meta_lr, smd_state, smd_trajectories
from .surface import sample_run_steps, summary_rows, surface_grids


def settings_table(shown):
    """Markdown table of the settings of one or more results, beside the paper's.

    ``shown`` is a list of ``(label, arrays, meta, path)``; the table also gives
    each file's profile, device, commit and time (its provenance).
    """
    def smd(config):
        return ", ".join(f"{h} ({m})" for h, m in zip(config["smd_horizons"], config["smd_meta_steps"]))

    def meta_step(config):
        config = with_smd_annealing(config)
        start, final = config["smd_meta_lr"], config["smd_meta_lr_final"]
        annealed = [f"at $T$ = {h} from meta step {a}" for h, a in zip(config["smd_horizons"],
                                                                       config["smd_anneal_from"])
                    if callable(smd_meta_lr(config, h))]
        return f"{start:g}" + (f"; {' and '.join(annealed)} on, decaying geometrically to {final:g} "
                               "at the last meta step" if annealed else " (constant)")

    def design(arrays, config):
        refine = int(config.get("refine_per_horizon", 0))
        first = f"{config['samples']} {'quasi-random' if config.get('sampling') == 'halton' else 'random'}"
        return first + (f" + {refine} per horizon around its optimum" if refine else "")

    rows = [("result file", lambda a, m, c, p: f"`{os.path.basename(str(p))}`", "-"),
            ("profile, seed", lambda a, m, c, p: f"`{m['profile']}`, {m['seed']}", "-"),
            ("run on, started", lambda a, m, c, p: f"{runs.devices_text(m)}; {runs.started_utc(m)}", "-"),
            ("commit", lambda a, m, c, p: f"`{m['git_commit']}`", "-"),
            ("schedules sampled", lambda a, m, c, p: design(a, c), "2,500 random"),
            ("horizons $T$", lambda a, m, c, p: ", ".join(str(int(h)) for h in c["horizons"]),
             ", ".join(str(h) for h in PAPER_HORIZONS)),
            ("time constant $K$", lambda a, m, c, p: f"{c['K']:g}", "5000"),
            ("training images in the objective", lambda a, m, c, p: f"{c['objective_examples']}", "60,000"),
            ("SMD horizons (meta steps)", lambda a, m, c, p: smd(c), "100, 1000, 5000 (5,000 each)"),
            ("SMD meta step size (Adam)", lambda a, m, c, p: meta_step(c), "not given"),
            ("training images in the SMD objective",
             lambda a, m, c, p: f"{c.get('smd_objective_examples', c['objective_examples'])}", "60,000")]
    return report.markdown_table(["setting", *(label for label, *_ in shown), "paper"],
                                 [[name, *(cell(a, m, m["config"], p) for _, a, m, p in shown), paper]
                                  for name, cell, paper in rows])


def claims_table(shown, bands):
    """Markdown table of the paper's two claims under every choice, one row per result and claim.

    ``shown`` is a list of ``(label, arrays, meta, path)`` as for :func:`settings_table`,
    ``bands`` the matching :func:`offline_surface.claim_bands` records: the surface estimate
    with its bootstrap interval, its range over bandwidths, and the other estimators.
    """
    rows = []
    for (label, arrays, _, _), band in zip(shown, bands):
        for claim, title in (("beta_ratio", "best $\\beta$ ratio"), ("loss_ratio", "loss ratio")):
            b = band[claim]
            others = "; ".join(f"{name} {value:,.0f}" for name, value in b.estimators.items())
            rows.append([label, f"{title} (> {b.bound:,.0f})", f"{b.value:,.0f}",
                         f"[{b.bootstrap[0]:,.0f}, {b.bootstrap[1]:,.0f}]",
                         f"{b.bandwidth[0]:,.0f} to {b.bandwidth[1]:,.0f}", others])
    scales = bands[0]["beta_ratio"].scales
    return report.markdown_table(
        ["run", "claim (paper)", "surface", f"95% bootstrap ({bands[0]['beta_ratio'].reps:,})",
         f"bandwidth x{min(scales):g} to x{max(scales):g}", "other estimators"], rows)


def smd_table(shown):
    """Markdown table of the SMD runs of one or more results (``(label, arrays, config)``): start,
    meta steps, end point, the horizon's surface optimum, and the run's state
    (:func:`offline_smd.smd_state`)."""
    cells = []
    for label, arrays, config in shown:
        horizons = [int(h) for h in config["horizons"]]
        rows = summary_rows(arrays, config)
        for run in smd_trajectories(arrays, config):
            row = rows[horizons.index(run["horizon"])]
            state = smd_state(run, config)
            cells.append([label, run["horizon"], f"{run['beta0']:g}", len(run["meta_loss"]),
                          f"{10 ** run['log10_alpha0'][-1]:.3g}", f"{10 ** run['log10_beta'][-1]:.3g}",
                          f"{row['beta']:.3g} [{row['beta_low']:.2g}, {row['beta_high']:.2g}]",
                          f"**{state.state}**: {state.reason}"])
    return report.markdown_table(["run", "horizon $T$", "start $\\beta$", "meta steps", "final $\\alpha_0$",
                                  "final $\\beta$", "surface optimum $\\beta$ [95%]", "state"], cells)


def summary_table(arrays, config):
    """Markdown table of :func:`~shortbias_lib.experiments.offline.surface.summary_rows` (for the chapter)."""
    long = int(config["horizons"][-1])
    header = ["horizon $T$", "best $\\alpha_0$ [95%]", "best $\\beta$ [95%]", "best sample $(\\alpha_0, \\beta)$",
              "its loss at $T$", f"training loss at {long}", f"training error at {long}", f"test error at {long}"]
    return report.markdown_table(header, [
        [row["horizon"], f"{row['alpha0']:.3g} [{row['alpha0_low']:.2g}, {row['alpha0_high']:.2g}]",
         f"{row['beta']:.3g} [{row['beta_low']:.2g}, {row['beta_high']:.2g}]",
         f"({row['sample_alpha0']:.3g}, {row['sample_beta']:.3g})", f"{row['objective']:.3g}",
         f"{row['final_train_loss']:.3g}", f"{row['final_train_error']:.2%}", f"{row['final_test_error']:.2%}"]
        for row in summary_rows(arrays, config)])


def smd_ends_near_optimum(run, rows):
    """Whether an SMD run ends with beta inside the 95% bootstrap interval of its horizon's
    surface optimum (``rows``: :func:`~shortbias_lib.experiments.offline.surface.summary_rows`)."""
    row = next(row for row in rows if row["horizon"] == run["horizon"])
    return bool(row["beta_low"] <= 10 ** run["log10_beta"][-1] <= row["beta_high"])


def smd_near_optimum(arrays, config):
    """How many SMD runs end with beta inside the 95% bootstrap interval of their horizon's optimum."""
    rows = summary_rows(arrays, config)
    return sum(smd_ends_near_optimum(run, rows) for run in smd_trajectories(arrays, config))


def _grid_of_axes(n, width=3.3, height=3.0, ncols=2):
    """``n`` panels, at most ``ncols`` a row, so that labels stay legible in the text column
    (``plotting.COLUMN_PX``: the default two panels a row are no wider than it)."""
    import matplotlib.pyplot as plt

    nrows = -(-n // ncols)
    figure, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                                constrained_layout=True, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return figure, list(axes.flat[:n])


def effective_factor(config):
    """``1 / (1 - mu)``: Figure 5's vertical axis is the paper's initial effective learning
    rate ``alpha_0 / (1 - mu)``, this factor times the ``alpha_0`` of the tables."""
    return 1.0 / (1.0 - float(config["momentum"]))


def plot_surfaces(arrays, config, grid=80, bandwidth=None, show_samples=True):
    """Figure 5: one panel per horizon, smoothed log10 training loss over the decay exponent
    and the initial effective learning rate ``alpha_0 / (1 - mu)`` (the paper's axes), the
    surface's optimum (white circle) with its bootstrap resamples (white dots), the best
    sample (star) and the SMD trajectories of that horizon (red)."""
    horizons = [int(h) for h in config["horizons"]]
    scale = effective_factor(config)
    gx, gy, surfaces = surface_grids(arrays, config, grid, bandwidth)
    trajectories = smd_trajectories(arrays, config)
    steps_run = sample_run_steps(arrays, config)
    figure, axes = _grid_of_axes(len(horizons))
    best = arrays["best_index"]
    for k, (ax, h, Z) in enumerate(zip(axes, horizons, surfaces)):
        mesh = ax.pcolormesh(10.0 ** gx, scale * 10.0 ** gy, Z, shading="auto", cmap="viridis")
        ax.contour(10.0 ** gx, scale * 10.0 ** gy, Z, levels=8, colors="white", linewidths=0.4, alpha=0.6)
        figure.colorbar(mesh, ax=ax, label="log10 training loss (smoothed)")
        if show_samples:
            use = steps_run >= h
            ax.scatter(10.0 ** arrays["log10_beta"][use], scale * 10.0 ** arrays["log10_alpha0"][use], s=2,
                       c="k", alpha=0.35, linewidths=0)
        boot = arrays["bootstrap_log10"][:, k]
        ax.scatter(10.0 ** boot[:, 1], scale * 10.0 ** boot[:, 0], s=4, c="white", alpha=0.5, linewidths=0,
                   label="bootstrap optima")
        ax.plot(10.0 ** arrays["surface_log10"][k, 1], scale * 10.0 ** arrays["surface_log10"][k, 0], "o",
                color="white", markeredgecolor="k", markersize=8, label="surface optimum")
        if best[k] >= 0:
            ax.plot(10.0 ** arrays["log10_beta"][best[k]], scale * 10.0 ** arrays["log10_alpha0"][best[k]],
                    marker="*", color="white", markeredgecolor="k", markersize=13, linestyle="none",
                    label="best sample")
        for run in trajectories:
            if run["horizon"] != h:
                continue
            bx, ay = 10.0 ** run["log10_beta"], scale * 10.0 ** run["log10_alpha0"]
            ax.plot(bx, ay, color="red", linewidth=1.4)
            ax.plot(bx[0], ay[0], "o", color="red", markersize=4)
            ax.plot(bx[-1], ay[-1], "X", color="red", markeredgecolor="white", markersize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(10.0 ** np.array(config["log10_beta_range"]))
        ax.set_ylim(scale * 10.0 ** np.array(config["log10_alpha0_range"]))
        ax.set_xlabel(r"decay exponent $\beta$")
        ax.set_ylabel(r"initial effective rate $\alpha_0/(1-\mu)$")
        ax.set_title(f"horizon T = {h}")
    axes[0].legend(loc="lower left")
    return figure


# Figure 6's learning-rate panel ends this many decades below the lowest rate of the
# schedules other than the one that decays furthest
LR_PANEL_DECADES = 2.0


def _curve_prefix(which):
    if which not in ("surface", "sample"):
        raise ValueError(f"which must be 'surface' or 'sample'; got {which!r}")
    return "surface_curve_" if which == "surface" else "curve_"


def lr_panel_floor(arrays, config, which="surface"):
    """Lower edge of Figure 6's learning-rate panel and the horizons whose schedules leave it.

    The edge lies :data:`LR_PANEL_DECADES` below the lowest rate of every schedule but the
    one that decays furthest (the 100-step optimum's falls by tens of decades and would
    squash the others), or at the lowest rate of all if that is higher. Returns
    ``(floor, [(horizon, its lowest rate), ...] of the schedules that go below it)``.
    """
    horizons = [int(h) for h in config["horizons"]]
    lows = []
    for k in range(len(horizons)):
        values = np.asarray(arrays[_curve_prefix(which) + "lr"][k], dtype=np.float64)
        values = values[np.isfinite(values) & (values > 0)]
        lows.append(float(values.min()) if values.size else np.inf)
    lows = np.array(lows)
    ordered = np.sort(lows[np.isfinite(lows)])
    if ordered.size < 2:
        return (float(ordered[0]) if ordered.size else np.nan), []
    floor = max(float(ordered[0]), float(ordered[1]) * 10.0 ** -LR_PANEL_DECADES)
    return floor, [(h, float(low)) for h, low in zip(horizons, lows) if low < floor]


def plot_training_curves(arrays, config, which="surface"):
    """Figure 6: training loss (log), training and test error, and learning rate of each
    horizon's best schedule, trained for the longest horizon: the surface optima
    (``which="surface"``) or the best samples (``which="sample"``). The learning-rate panel
    ends at :func:`lr_panel_floor`."""
    import matplotlib.pyplot as plt

    prefix = _curve_prefix(which)
    horizons = [int(h) for h in config["horizons"]]
    steps = arrays["curve_steps"]
    figure, axes = _grid_of_axes(4, width=3.3, height=2.7)
    colors = plt.cm.plasma(np.linspace(0.0, 0.85, len(horizons)))
    panels = [("train_loss", "training loss", True), ("train_error", "training error", False),
              ("test_error", "test error", False), ("lr", r"learning rate $\alpha_t$", True)]
    for ax, (key, label, log) in zip(axes, panels):
        for k, h in enumerate(horizons):
            values = np.asarray(arrays[prefix + key][k], dtype=np.float64)
            ok = np.isfinite(values)
            ax.plot(steps[ok], values[ok], color=colors[k], label=f"best of T = {h}")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
    axes[1].set_ylim(bottom=0)
    axes[2].set_ylim(bottom=0)
    floor, _ = lr_panel_floor(arrays, config, which)
    if np.isfinite(floor):
        axes[3].set_ylim(bottom=floor)
    axes[0].legend()
    return figure


def plot_smd_states(shown):
    """The decay exponent along every SMD run of one or more results (``(label, arrays, config)``,
    one column each, one row per SMD horizon), labelled with its state
    (:func:`offline_smd.smd_state`); grey band: the horizon's surface optimum, 95% bootstrap."""
    horizons = [int(h) for h in shown[0][2]["smd_horizons"]]
    figure, axes = _grid_of_axes(len(horizons) * len(shown), width=3.3, height=2.3, ncols=len(shown))
    styles = {"converged": "-", "still moving": "--", "collapsed": ":"}
    for c, (label, arrays, config) in enumerate(shown):
        all_horizons = [int(h) for h in config["horizons"]]
        rows = summary_rows(arrays, config)
        for r, h in enumerate(horizons):
            ax = axes[r * len(shown) + c]
            row = rows[all_horizons.index(h)]
            ax.axhspan(row["beta_low"], row["beta_high"], color="0.85")
            for k, run in enumerate(run for run in smd_trajectories(arrays, config) if run["horizon"] == h):
                state = smd_state(run, config)
                ax.plot(10.0 ** run["log10_beta"], linestyle=styles[state.state], color=f"C{k}",
                        label=f"from {run['beta0']:g}: {state.state}")
                start = collapse_start(state)
                if start >= 0:
                    ax.plot(start, 10.0 ** run["log10_beta"][start], "x", color="red", markersize=8)
            ax.set_yscale("log")
            ax.set_xlabel("meta step")
            ax.set_ylabel(r"$\beta$")
            ax.set_title(f"{label}, T = {h}")
            ax.legend(loc="best")
    return figure


def plot_smd_losses(arrays, config):
    """Meta-objective along each SMD run (one line per start point and horizon)."""
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6.4, 3.5), constrained_layout=True)
    for run in smd_trajectories(arrays, config):
        loss = run["meta_loss"]
        ok = np.isfinite(loss)
        ax.plot(np.flatnonzero(ok), loss[ok],
                label=f"T = {run['horizon']}, start beta = {run['beta0']:g}")
    ax.set_yscale("log")
    ax.set_xlabel("meta step")
    ax.set_ylabel("meta-objective (training loss at T)")
    ax.legend()
    return figure

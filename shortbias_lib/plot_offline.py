"""Figures 5 and 6 of the offline experiment, drawn from a result of :mod:`shortbias_lib.offline`."""

import numpy as np

from .offline import smd_trajectories, surface_grids


def plot_surfaces(arrays, config, grid=80, bandwidth=None, show_samples=True):
    """Figure 5: one panel per horizon, smoothed log10 training loss over (beta, alpha_0),
    the best sample (star) and the SMD trajectories of that horizon (red)."""
    import matplotlib.pyplot as plt

    horizons = [int(h) for h in config["horizons"]]
    gx, gy, surfaces = surface_grids(arrays, config, grid, bandwidth)
    trajectories = smd_trajectories(arrays, config)
    figure, axes = plt.subplots(1, len(horizons), figsize=(3.6 * len(horizons), 3.5),
                                constrained_layout=True, squeeze=False)
    best = arrays["best_index"]
    for k, (ax, h, Z) in enumerate(zip(axes[0], horizons, surfaces)):
        mesh = ax.pcolormesh(10.0 ** gx, 10.0 ** gy, Z, shading="auto", cmap="viridis")
        ax.contour(10.0 ** gx, 10.0 ** gy, Z, levels=8, colors="white", linewidths=0.4, alpha=0.6)
        figure.colorbar(mesh, ax=ax, label="log10 training loss (smoothed)")
        if show_samples:
            ax.scatter(10.0 ** arrays["log10_beta"], 10.0 ** arrays["log10_alpha0"], s=2, c="k",
                       alpha=0.35, linewidths=0)
        if best[k] >= 0:
            ax.plot(10.0 ** arrays["log10_beta"][best[k]], 10.0 ** arrays["log10_alpha0"][best[k]],
                    marker="*", color="white", markeredgecolor="k", markersize=13, linestyle="none",
                    label="best sample")
        for run in trajectories:
            if run["horizon"] != h:
                continue
            bx, ay = 10.0 ** run["log10_beta"], 10.0 ** run["log10_alpha0"]
            ax.plot(bx, ay, color="red", linewidth=1.4)
            ax.plot(bx[0], ay[0], "o", color="red", markersize=4)
            ax.plot(bx[-1], ay[-1], "X", color="red", markeredgecolor="white", markersize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(10.0 ** np.array(config["log10_beta_range"]))
        ax.set_ylim(10.0 ** np.array(config["log10_alpha0_range"]))
        ax.set_xlabel(r"decay exponent $\beta$")
        ax.set_ylabel(r"initial learning rate $\alpha_0$")
        ax.set_title(f"horizon T = {h}")
    axes[0][0].legend(loc="lower left", fontsize=8)
    return figure


def plot_training_curves(arrays, config):
    """Figure 6: training loss (log), training and test error, and learning rate of each
    horizon's best schedule, trained for the longest horizon."""
    import matplotlib.pyplot as plt

    horizons = [int(h) for h in config["horizons"]]
    steps = arrays["curve_steps"]
    figure, axes = plt.subplots(1, 4, figsize=(15, 3.5), constrained_layout=True)
    colors = plt.cm.plasma(np.linspace(0.0, 0.85, len(horizons)))
    panels = [("curve_train_loss", "training loss", True), ("curve_train_error", "training error", False),
              ("curve_test_error", "test error", False), ("curve_lr", r"learning rate $\alpha_t$", True)]
    for ax, (key, label, log) in zip(axes, panels):
        for k, h in enumerate(horizons):
            values = np.asarray(arrays[key][k], dtype=np.float64)
            ok = np.isfinite(values)
            ax.plot(steps[ok], values[ok], color=colors[k], label=f"best of T = {h}")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
    axes[1].set_ylim(bottom=0)
    axes[2].set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    return figure


def plot_smd_losses(arrays, config):
    """Meta-objective along each SMD run (one line per start point and horizon)."""
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    for run in smd_trajectories(arrays, config):
        loss = run["meta_loss"]
        ok = np.isfinite(loss)
        ax.plot(np.flatnonzero(ok), loss[ok],
                label=f"T = {run['horizon']}, start beta = {run['beta0']:g}")
    ax.set_yscale("log")
    ax.set_xlabel("meta step")
    ax.set_ylabel("meta-objective (training loss at T)")
    ax.legend(fontsize=8)
    return figure

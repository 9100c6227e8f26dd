"""Figure of the hypergradient precision measurement (the chapter ``hypergrad_precision``)."""

import numpy as np

from .analysis import COMPONENTS, nanmax, relative_differences


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

    figure, axes = plt.subplots(1, 2, figsize=(6.8, 4.6), sharey=True)
    for c, ax in enumerate(axes):
        for kind, style in styles.items():
            rows = np.flatnonzero(kinds == kind)
            if not len(rows):
                continue
            values = np.maximum(rel[rows][:, :, c], floor)     # (runs, H); NaN stays NaN
            top = nanmax(values, values.shape[1:])
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
        ax.set_title(f"hypergradient component:\n{COMPONENTS[c]}")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("relative difference to float64")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize="small", frameon=False)
    if title:
        figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.2, 1, 1))
    return figure

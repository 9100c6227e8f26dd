"""Tables and figures of the online experiment (Figures 7 and 8): runs against the baseline.

Each function takes ``{key: OnlineRun}`` as returned by :func:`shortbias_lib.experiments.online.experiment.run_dataset`
or rebuilt from a result file's arrays by :func:`shortbias_lib.experiments.online.experiment.runs_from_arrays`.
"""

import math

import numpy as np


def summary_rows(runs):
    """One row per run: mode, initial and settled effective rate, final loss, test error, divergence."""
    rows = []
    for key, run in runs.items():
        rows.append({
            "run": key, "mode": run.mode, "init_lr": run.init_lr,
            "init_eff_lr": run.init_eff_lr,
            "settled_eff_lr": run.settled_lr, "settled_momentum": run.settled_momentum,
            "final_train_loss": run.final_train_loss, "test_error": run.test_error,
            "diverged_step": run.diverged_step if run.diverged else None,
            "lookahead_divergences": int(len(run.lookahead_diverged_steps)),
            "chance_step": run.chance_step(),
            "stopped_step": run.stopped_step,
        })
    return rows


def summary_table(runs):
    """Markdown table of :func:`summary_rows` (for display in the chapter)."""
    from ...report import markdown, markdown_table

    def fmt(value, spec):
        return "n/a" if value is None or not math.isfinite(value) else format(value, spec)

    rows = []
    for row in summary_rows(runs):
        diverged = "no" if row["diverged_step"] is None else f"**yes, step {row['diverged_step']}**"
        if row["chance_step"] >= 0:
            diverged += f", **loss at chance level from step {row['chance_step']}**"
        if row["stopped_step"] >= 0:
            diverged += f", stopped there at step {row['stopped_step']}"
        if row["lookahead_divergences"]:
            diverged += f" ({row['lookahead_divergences']} lookahead(s) diverged)"
        rows.append([row["mode"], f"{row['init_lr']:.0e}", f"{row['init_eff_lr']:.2g}",
                     fmt(row["settled_eff_lr"], ".2e"), fmt(row["settled_momentum"], ".3f"),
                     fmt(row["final_train_loss"], ".3g"), fmt(row["test_error"], ".2%"), diverged])
    return markdown(markdown_table(["run", "initial $\\alpha$", "initial $\\alpha_{\\rm eff}$",
                                    "$\\alpha_{\\rm eff}$ at end of adaptation", "$\\mu$ there",
                                    "final training loss", "test error", "diverged"], rows))


def plot_runs(axes_loss, axes_lr, runs, title=None):
    """Training loss (log) and effective learning rate (log) against steps, Figure 7 style.

    The baseline is red, SMD runs blue (darker: larger initial rate). A
    diverged run is drawn up to its last finite value and marked with an ``x``
    and its step; nothing NaN is plotted.
    """
    smd_runs = [r for r in runs.values() if r.mode != "baseline"]
    order = sorted({r.init_lr for r in smd_runs})
    shades = {lr: 0.45 + 0.55 * (i + 1) / len(order) for i, lr in enumerate(order)}
    import matplotlib.pyplot as plt

    blues = plt.get_cmap("Blues")
    for run in runs.values():
        if run.mode == "baseline":
            color, name = "tab:red", f"hand-tuned, $\\alpha$={run.init_lr:g}"
        else:
            color, name = blues(shades[run.init_lr]), f"SMD, $\\alpha_0$={run.init_lr:g}"
        steps = run.eval_steps
        chance = run.chance_step()
        if chance >= 0:
            name += f", at chance from step {chance:,}"
        if len(steps):
            axes_loss.plot(steps, run.eval_losses, color=color, lw=1.6, label=name)
        good = run.last_finite_step
        t = np.arange(good)
        axes_lr.plot(t, run.eff_lr[:good], color=color, lw=1.6, label=name)
        if run.diverged:
            label = f"diverged at step {run.diverged_step}"
            if len(steps):
                axes_loss.plot(steps[-1], run.eval_losses[-1], "x", color=color, ms=10, mew=2.5)
                axes_loss.annotate(label, (steps[-1], run.eval_losses[-1]), fontsize="small",
                                   xytext=(4, 4), textcoords="offset points", color=color)
            if good > 0:
                axes_lr.plot(good - 1, run.eff_lr[good - 1], "x", color=color, ms=10, mew=2.5)
                axes_lr.annotate(label, (good - 1, run.eff_lr[good - 1]), fontsize="small",
                                 xytext=(4, 4), textcoords="offset points", color=color)
        if chance >= 0:
            k = int(np.searchsorted(steps, chance))
            axes_loss.plot(steps[k], run.eval_losses[k], "o", mfc="none", color=color, ms=9, mew=2)
    for axes in (axes_loss, axes_lr):
        values = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in axes.get_lines()]
                                or [np.ones(1)])
        values = values[np.isfinite(values) & (values > 0)]
        if values.size:  # explicit limits: never singular, even for a single point
            axes.set_ylim(values.min() / 1.5, values.max() * 1.5)
        axes.set_yscale("log")
        axes.grid(True, which="major", ls=":")
    axes_loss.set_ylabel("training loss")
    axes_lr.set_ylabel("effective learning rate $\\alpha/(1-\\mu)$")
    axes_lr.set_xlabel("step")
    if title:
        axes_loss.set_title(title, fontsize="medium")
    # Below the panels, so that no curve is hidden (runs stopped early crowd the left edge).
    axes_lr.legend(*axes_loss.get_legend_handles_labels(), fontsize="small", loc="upper center",
                   bbox_to_anchor=(0.5, -0.22), ncol=1, frameon=False)


def figure(panels, figsize=None):
    """A figure with one column per ``(title, runs)`` panel: loss on top, effective rate below."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(panels), figsize=figsize or (3.4 * len(panels), 7.4),
                             sharex="col", squeeze=False)
    for k, (title, runs) in enumerate(panels):
        plot_runs(axes[0, k], axes[1, k], runs, title)
    fig.tight_layout()
    return fig


def select(runs, modes):
    """The runs whose mode is in ``modes``, keeping order."""
    return {k: r for k, r in runs.items() if r.mode in modes}

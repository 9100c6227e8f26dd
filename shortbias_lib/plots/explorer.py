"""An ipywidgets explorer of greedy, optimized and fixed schedules on the noisy quadratic.

The numbers come from :func:`shortbias_lib.nqm.horizon_bias.explore`; this module only
draws them. :func:`plot_explore` is a plain matplotlib figure (what the HTML
book shows for the default sliders); :func:`make_explorer` wraps it in sliders,
which need a running kernel to update.
"""

import matplotlib.pyplot as plt
import numpy as np

from ..nqm.horizon_bias import EXPLORER_DEFAULTS, explore

COLORS = {"greedy": "tab:blue", "optimized": "tab:red", "fixed": "tab:green"}
LABELS = {"greedy": "greedy (Theorem 2)", "optimized": "best decay schedule (grid)",
          "fixed": "fixed (slider lr, mu)"}


def plot_explore(result, title=None):
    """Loss curves and learning rates of the three schedules in ``result``; returns the figure."""
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(6.8, 3.2))
    steps = result["steps"]
    for name in ("greedy", "optimized", "fixed"):
        loss = np.asarray(result[f"{name}_losses"], dtype=float)
        ok = np.isfinite(loss) & (loss > 0)
        final = (f"{loss[-1]:.3g}" if np.isfinite(loss[-1])
                 else f"diverged at step {int(np.argmax(~np.isfinite(loss)))}")
        ax_loss.plot(steps[ok], loss[ok], color=COLORS[name], label=f"{LABELS[name]}: {final}")
        ax_lr.plot(steps[1:], result[f"{name}_alphas"], color=COLORS[name])
    ax_loss.set(yscale="log", xlabel="step t", ylabel="expected excess loss")
    ax_loss.legend(fontsize="small", title="final loss", title_fontsize="small")
    ax_lr.set(yscale="log", xlabel="step t", ylabel=r"learning rate $\alpha_t$")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def title(kappa, noise, horizon, lr, mu):
    """The figure's title: the slider values, the noise also as a batch-size factor."""
    return (f"kappa = {kappa:.3g}, noise = {noise:.3g} (batch x{1 / noise:.3g})" if noise > 0 else
            f"kappa = {kappa:.3g}, deterministic") + f", T = {horizon}, fixed lr = {lr:.3g}, mu = {mu:.2f}"


def show(kappa, noise, horizon, lr, mu, **kw):
    """Compute and draw one setting (the sliders' callback)."""
    result = explore(kappa, noise, int(horizon), lr, mu, **kw)
    fig = plot_explore(result, title(kappa, noise, int(horizon), lr, mu))
    plt.show()
    return fig


def make_explorer(defaults=None, **explore_kw):
    """Sliders for condition number, noise, horizon, learning rate and momentum.

    Returns an ``ipywidgets`` box; display it in a notebook. Its output is drawn
    once with the defaults when created, so a saved notebook keeps that figure.
    """
    import ipywidgets as w

    d = dict(EXPLORER_DEFAULTS, **(defaults or {}))
    style = {"description_width": "150px"}
    layout = w.Layout(width="480px")
    sliders = dict(
        kappa=w.FloatLogSlider(value=d["kappa"], base=10, min=0, max=5, step=0.25,
                               description="condition number", style=style, layout=layout),
        noise=w.FloatLogSlider(value=d["noise"], base=10, min=-3, max=1, step=0.25,
                               description="noise (1/batch)", style=style, layout=layout),
        horizon=w.IntSlider(value=d["horizon"], min=10, max=500, step=10,
                            description="horizon T", style=style, layout=layout),
        lr=w.FloatLogSlider(value=d["lr"], base=10, min=-3, max=0.5, step=0.1,
                            description="fixed learning rate", style=style, layout=layout),
        mu=w.FloatSlider(value=d["mu"], min=0.0, max=0.99, step=0.01,
                         description="momentum", style=style, layout=layout),
    )
    out = w.interactive_output(lambda **kw: show(**kw, **explore_kw), sliders)
    return w.VBox([w.HBox([w.VBox(list(sliders.values()))]), out])

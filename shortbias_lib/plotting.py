"""Matplotlib helpers shared by the chapters: consistent colours, bands, schedule panels.

Each helper draws on axes it is given (or makes a figure) and returns them,
so notebooks keep one figure per cell and label every axis.
"""

import numpy as np

SCHEDULE_COLORS = {"optimized": "tab:red", "greedy": "tab:blue", "fixed": "tab:green"}


def _np(x):
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(x)


def figure(ncols=1, nrows=1, width=4.0, height=3.2, **kwargs):
    """A figure with ``nrows x ncols`` axes of the given size each (constrained layout)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             layout="constrained", squeeze=False, **kwargs)
    return fig, axes


def band(ax, x, mean, half_width, *, label=None, color=None, alpha=0.25, **line_kwargs):
    """A line with a shaded band ``mean +- half_width`` (e.g. a 95% confidence band)."""
    x, mean, half_width = _np(x), _np(mean), _np(half_width)
    (line,) = ax.plot(x, mean, label=label, color=color, **line_kwargs)
    ax.fill_between(x, mean - half_width, mean + half_width, color=line.get_color(),
                    alpha=alpha, linewidth=0)
    return line


def schedule_panels(axes, series, *, colors=None, loss_log=True, labels=None):
    """Draw losses, learning rates and momenta of several schedules on three axes.

    ``series`` maps a name to a dict with ``losses`` (T+1), ``alphas`` (T) and
    ``mus`` (T); colours default to :data:`SCHEDULE_COLORS`.
    """
    colors = {**SCHEDULE_COLORS, **(colors or {})}
    ax_loss, ax_lr, ax_mu = axes
    for name, s in series.items():
        c = colors.get(name)
        label = (labels or {}).get(name, name)
        losses = _np(s["losses"])
        ax_loss.plot(np.arange(len(losses)), losses, color=c, label=label)
        ax_lr.plot(np.arange(len(_np(s["alphas"]))), _np(s["alphas"]), color=c, label=label)
        ax_mu.plot(np.arange(len(_np(s["mus"]))), _np(s["mus"]), color=c, label=label)
    if loss_log:
        ax_loss.set_yscale("log")
    ax_loss.set(xlabel="step", ylabel="expected loss")
    ax_lr.set(xlabel="step", ylabel="learning rate", yscale="log")
    ax_mu.set(xlabel="step", ylabel="momentum")
    ax_loss.legend(fontsize="small")
    return axes


def mark_minima(ax, x, ys, *, color=None, **kwargs):
    """Mark the minimum of each curve ``ys[i]`` over ``x`` with a dot; returns the argmin x's."""
    x = _np(x)
    out = []
    for y in np.atleast_2d(_np(ys)):
        i = int(np.nanargmin(y))
        ax.plot(x[i], y[i], "o", color=color, **kwargs)
        out.append(x[i])
    return np.array(out)


def quadratic_contours(ax, h, xlim, ylim, *, levels=12, cmap="Greys", n=200):
    """Contours of ``1/2 (h_0 x^2 + h_1 y^2)`` for two-dimensional illustrations."""
    h = _np(h)
    xs, ys = np.linspace(*xlim, n), np.linspace(*ylim, n)
    X, Y = np.meshgrid(xs, ys)
    Z = 0.5 * (h[0] * X ** 2 + h[1] * Y ** 2)
    ax.contour(X, Y, Z, levels=levels, cmap=cmap, linewidths=0.7)
    ax.set(xlim=xlim, ylim=ylim)
    return ax

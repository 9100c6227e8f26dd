"""Matplotlib helpers shared by the chapters: consistent colours, bands, schedule panels.

Each helper draws on axes it is given (or makes a figure) and returns them,
so notebooks keep one figure per cell and label every axis.
"""

import warnings

import numpy as np

from ..runs import to_numpy

SCHEDULE_COLORS = {"optimized": "tab:red", "greedy": "tab:blue", "fixed": "tab:green"}

# Legible pages: the HTML book's text column is this wide at a 1280 px window (tests/test_book.py
# checks the figures in a browser); a wider image is scaled down to it, and its text with it.
COLUMN_PX = 660
# No text of a figure may be shown smaller than this, in CSS points (1/72 in; a CSS pixel is 1/96 in).
MIN_DISPLAYED_PT = 9.0
# The book's figures are drawn with this style (installed by :func:`use_book_style`, which
# ``notebook.setup`` calls): every text at least 9 pt, so that a figure no wider than the
# column (about 6.8 in at 100 dpi, padding included) shows all its text at 9 pt or more.
BOOK_STYLE = {
    "font.size": 11.0,  # so that a "small" (x 0.833) text is 9.2 pt
    "axes.titlesize": 10.5,
    "axes.labelsize": 10.0,
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
    "legend.fontsize": 9.5,
    "legend.title_fontsize": 9.5,
    "figure.titlesize": 11.0,
    "figure.dpi": 100,
    "savefig.dpi": "figure",
}


class LegibilityWarning(UserWarning):
    """A figure would show some of its text below ``MIN_DISPLAYED_PT`` in the book."""


def _texts(fig):
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip()]


def natural_width_px(fig, renderer=None, tight=True):
    """The width in pixels of the PNG the inline backend makes of ``fig`` (at ``fig.dpi``, cropped
    with ``bbox_inches="tight"`` and ``savefig.pad_inches`` as IPython's ``print_figure`` does)."""
    import matplotlib

    if not tight:
        return fig.get_figwidth() * fig.dpi
    if renderer is None:
        renderer = fig.canvas.get_renderer()
    bbox = fig.get_tightbbox(renderer)  # inches
    pad = matplotlib.rcParams["savefig.pad_inches"]
    pad = 0.0 if pad == "layout" else float(pad)
    return (bbox.width + 2 * pad) * fig.dpi


def displayed_scale(fig, column_px=COLUMN_PX, renderer=None):
    """CSS points per point of font size as ``fig`` is shown in the book: the image has
    ``fig.dpi`` pixels per inch, one image pixel is one CSS pixel (1/96 in), and an image wider
    than the column is scaled down to ``column_px``."""
    natural = natural_width_px(fig, renderer)
    return fig.dpi / 96.0 * min(1.0, column_px / natural)


def smallest_displayed_font_pt(fig, column_px=COLUMN_PX, *, renderer=None, with_text=False):
    """The smallest size, in CSS points as shown in the book, of any visible non-empty text of
    ``fig`` (tick labels, axis labels, titles, legends, annotations): its font size times
    :func:`displayed_scale`. ``fig`` is laid out first (ticks and constrained layout are only
    decided at draw time), unless ``renderer`` is given (from inside a draw). With
    ``with_text``, return ``(size, text)`` for the smallest text. ``inf`` if ``fig`` has no text."""
    if renderer is None:
        fig.draw_without_rendering()
    scale = displayed_scale(fig, column_px, renderer)
    sizes = [(t.get_fontsize() * scale, t.get_text()) for t in _texts(fig)]
    smallest = min(sizes, default=(float("inf"), None), key=lambda s: s[0])
    return smallest if with_text else smallest[0]


def check_legible(fig, min_pt=MIN_DISPLAYED_PT, column_px=COLUMN_PX, *, renderer=None):
    """Warn (:class:`LegibilityWarning`) when ``fig`` would show some text below ``min_pt``;
    return the smallest displayed size."""
    size, text = smallest_displayed_font_pt(fig, column_px, renderer=renderer, with_text=True)
    if size < min_pt:
        label = fig.get_suptitle() or next((ax.get_title() for ax in fig.axes if ax.get_title()), "")
        warnings.warn(f"figure {label!r} ({fig.get_figwidth():.2f} x {fig.get_figheight():.2f} in) "
                      f"shows {text!r} at {size:.1f} pt in the book's {column_px} px column "
                      f"(at least {min_pt:g} pt needed): use larger fonts or a narrower figure",
                      LegibilityWarning, stacklevel=2)
    return size


def _check_on_draw(event):
    from matplotlib.backends.backend_agg import RendererAgg

    figure = event.canvas.figure
    # a PNG (not a PDF or SVG) being drawn; one warning a figure (savefig draws it twice)
    if isinstance(event.renderer, RendererAgg) and not getattr(figure, "_illegible", False):
        figure._illegible = check_legible(figure, renderer=event.renderer) < MIN_DISPLAYED_PT


def watch_legibility(fig):
    """A ``figure.hooks`` entry: check every PNG drawing of ``fig`` with :func:`check_legible`."""
    fig.canvas.mpl_connect("draw_event", _check_on_draw)


WATCH_HOOK = "shortbias_lib.plots.common:watch_legibility"


def use_book_style():
    """Draw every figure made from now on with :data:`BOOK_STYLE`, and warn
    (:class:`LegibilityWarning`, on stderr in a notebook, so the book's build fails) whenever
    one is drawn with some text below :data:`MIN_DISPLAYED_PT` as shown in the book."""
    import matplotlib

    matplotlib.rcParams.update(BOOK_STYLE)
    hooks = list(matplotlib.rcParams["figure.hooks"])
    if WATCH_HOOK not in hooks:
        matplotlib.rcParams["figure.hooks"] = hooks + [WATCH_HOOK]


def figure(ncols=1, nrows=1, width=4.0, height=3.2, **kwargs):
    """A figure with ``nrows x ncols`` axes of the given size each (constrained layout)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             layout="constrained", squeeze=False, **kwargs)
    return fig, axes


def band(ax, x, mean, half_width, *, label=None, color=None, alpha=0.25, **line_kwargs):
    """A line with a shaded band ``mean +- half_width`` (e.g. a 95% confidence band)."""
    x, mean, half_width = to_numpy(x), to_numpy(mean), to_numpy(half_width)
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
        losses = to_numpy(s["losses"])
        ax_loss.plot(np.arange(len(losses)), losses, color=c, label=label)
        ax_lr.plot(np.arange(len(to_numpy(s["alphas"]))), to_numpy(s["alphas"]), color=c, label=label)
        ax_mu.plot(np.arange(len(to_numpy(s["mus"]))), to_numpy(s["mus"]), color=c, label=label)
    if loss_log:
        ax_loss.set_yscale("log")
    ax_loss.set(xlabel="step", ylabel="expected loss")
    ax_lr.set(xlabel="step", ylabel="learning rate", yscale="log")
    ax_mu.set(xlabel="step", ylabel="momentum")
    ax_loss.legend(fontsize="small")
    return axes


def mark_minima(ax, x, ys, *, color=None, **kwargs):
    """Mark the minimum of each curve ``ys[i]`` over ``x`` with a dot; returns the argmin x's."""
    x = to_numpy(x)
    out = []
    for y in np.atleast_2d(to_numpy(ys)):
        i = int(np.nanargmin(y))
        ax.plot(x[i], y[i], "o", color=color, **kwargs)
        out.append(x[i])
    return np.array(out)


def quadratic_contours(ax, h, xlim, ylim, *, levels=12, cmap="Greys", n=200):
    """Contours of ``1/2 (h_0 x^2 + h_1 y^2)`` for two-dimensional illustrations."""
    h = to_numpy(h)
    xs, ys = np.linspace(*xlim, n), np.linspace(*ylim, n)
    X, Y = np.meshgrid(xs, ys)
    Z = 0.5 * (h[0] * X ** 2 + h[1] * Y ** 2)
    ax.contour(X, Y, Z, levels=levels, cmap=cmap, linewidths=0.7)
    ax.set(xlim=xlim, ylim=ylim)
    return ax



def paper_figure1(h, mc_conservative, mc_aggressive, loss_conservative, loss_aggressive, k_decay):
    """The paper's Figure 1 on a two-dimensional noisy quadratic of curvatures ``h``. Left: one
    sampled path of each schedule (Monte Carlo results with ``paths``) on the loss contours, the
    window widened to hold both paths; right: the exact expected losses, the aggressive schedule
    red up to ``k_decay`` and gold after, with Monte Carlo means every 10 steps as dots."""
    fig, axes = figure(2, width=3.4, height=3.0)
    ax = axes[0, 0]
    pc = mc_conservative.paths[:, 0].numpy()
    pa = mc_aggressive.paths[:, 0].numpy()
    # contour window wide enough for both sampled paths (nothing is clipped)
    x_lo = min(-1.5, float(min(pc[:, 1].min(), pa[:, 1].min())) - 0.3)
    x_hi = max(4.5, float(max(pc[:, 1].max(), pa[:, 1].max())) + 0.3)
    y_half = max(3.0, float(np.abs(np.concatenate([pc[:, 0], pa[:, 0]])).max()) + 0.3)
    quadratic_contours(ax, h.flip(0), (x_lo, x_hi), (-y_half, y_half), levels=10)
    ax.plot(pc[:, 1], pc[:, 0], color="tab:blue", lw=0.8, label="conservative, fixed")
    ax.plot(pa[:k_decay + 1, 1], pa[:k_decay + 1, 0], color="tab:red", lw=0.8, label="aggressive")
    ax.plot(pa[k_decay:, 1], pa[k_decay:, 0], color="gold", lw=1.2, label="then decay")
    ax.plot(0, 0, "k*", ms=10)
    ax.set(xlabel=r"$\theta_2$ (low curvature, $h=0.02$)", ylabel=r"$\theta_1$ (high curvature, $h=1$)")
    ax.legend(fontsize="small", loc="lower right")
    ax = axes[0, 1]
    steps = np.arange(len(loss_conservative))
    ax.plot(steps, loss_conservative, color="tab:blue", label="conservative")
    ax.plot(steps[:k_decay + 1], loss_aggressive[:k_decay + 1], color="tab:red", label="aggressive")
    ax.plot(steps[k_decay:], loss_aggressive[k_decay:], color="gold", label="decay")
    ax.plot(steps[::10], mc_conservative.loss_mean[::10], ".", color="tab:blue")
    ax.plot(steps[::10], mc_aggressive.loss_mean[::10], ".", color="tab:red")
    ax.set(xlabel="step", ylabel="expected excess loss", yscale="log")
    ax.legend(fontsize="small")
    return fig


def horizon_lr_curves(ks, lrs, fixed, decayed):
    """Figure 2: final loss against the learning rate for each horizon ``ks[i]``, at a fixed rate
    (``fixed[i]``, solid) and with the later decay (``decayed[i]``, dashed), each minimum dotted."""
    import matplotlib.pyplot as plt

    fixed, decayed = to_numpy(fixed), to_numpy(decayed)
    fig, axes = figure(1, width=6.0, height=4.0)
    ax = axes[0, 0]
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(ks)))
    for i, k in enumerate(ks):
        ax.plot(lrs, fixed[i], color=colors[i], label=f"k = {k}")
        ax.plot(lrs, decayed[i], "--", color=colors[i])
        mark_minima(ax, lrs, fixed[i], color=colors[i])
        mark_minima(ax, lrs, decayed[i], color=colors[i])
    ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="expected excess loss",
           ylim=(max(1.0, 0.5 * decayed.min()), 2 * fixed[:, 0].max()))
    ax.legend(fontsize="small")
    return fig


def figure3_panels(fig3, case=0, curvature_groups=True):
    """Figure 3 from :func:`~shortbias_lib.experiments.figure3.figure3`'s arrays for ``case`` (0 noisy,
    1 deterministic): loss, learning rate and momentum of each schedule and, with
    ``curvature_groups``, a second row with the loss of the 50 highest- and lowest-curvature
    directions (at most three panels a row, for legibility)."""
    names = list(fig3["schedules"])
    fig, axes = figure(3, nrows=2 if curvature_groups else 1, width=2.2, height=2.4)
    series = {n: dict(losses=fig3["losses"][case, i], alphas=fig3["alphas"][case, i], mus=fig3["mus"][case, i])
              for i, n in enumerate(names)}
    schedule_panels(axes[0, :3], series)
    if curvature_groups:
        steps = np.arange(fig3["losses"].shape[-1])
        for i, n in enumerate(names):
            axes[1, 0].plot(steps, fig3["loss_high50"][case, i], color=SCHEDULE_COLORS[n])
            axes[1, 1].plot(steps, fig3["loss_low50"][case, i], color=SCHEDULE_COLORS[n])
        axes[1, 0].set(xlabel="step", ylabel="loss, 50 highest curvatures", yscale="log")
        axes[1, 1].set(xlabel="step", ylabel="loss, 50 lowest curvatures", yscale="log")
        axes[1, 2].axis("off")
    return fig


def theorem1_figure(h, exact, mc, half_widths, loss_exact, colors):
    """Theorem 1's moments (``exact``) against Monte Carlo (``mc``) with 95% bands of
    ``half_widths`` (per moment name), one colour per dimension: the mean and the variance of
    theta, and the expected excess loss (the Monte Carlo mean dotted)."""
    fig, axes = figure(3, width=2.2, height=2.6)
    steps = np.arange(len(loss_exact))
    for i in range(len(colors)):
        axes[0, 0].plot(steps, exact.mean_theta[:, i], color=colors[i], label=f"h = {h[i].item():g}")
        band(axes[0, 0], steps, mc.mean_theta[:, i], half_widths["mean_theta"][:, i], color=colors[i], lw=0)
        axes[0, 1].plot(steps, exact.var_theta[:, i], color=colors[i])
        band(axes[0, 1], steps, mc.var_theta[:, i], half_widths["var_theta"][:, i], color=colors[i], lw=0)
    axes[0, 2].plot(steps, loss_exact, color="k", label="Theorem 1")
    band(axes[0, 2], steps, mc.loss_mean, 1.96 * mc.loss_sem, color="tab:red", lw=1,
         ls=":", alpha=0.4, label="Monte Carlo mean, 95% band")
    axes[0, 0].set(xlabel="step", ylabel=r"$\mathbb{E}[\theta_i]$")
    axes[0, 1].set(xlabel="step", ylabel=r"$\mathbb{V}[\theta_i]$")
    axes[0, 2].set(xlabel="step", ylabel="expected excess loss", yscale="log")
    axes[0, 0].legend(fontsize="small")
    axes[0, 2].legend(fontsize="small", loc="upper right", bbox_to_anchor=(1.0, -0.3))
    return fig


def theorem3_figure(h, sigma2, greedy, fit, colors):
    """Theorem 3 numerically, one colour per univariate problem (rows of ``h``, ``sigma2``):
    left, the gap between the final loss of the schedule ``fit`` (``nqm_gradient.fit_schedule``)
    and greedy's per Adam step (gaps below 1e-16 drawn at 1e-16); right, the fitted rates
    (dots) on the greedy ones (lines), times ``h`` to share one axis."""
    fig, axes = figure(2, width=3.3, height=2.8)
    steps = np.arange(greedy.alphas.shape[-1])
    for j, color in enumerate(colors):
        label = f"h={h[j, 0].item():g}, $\\sigma^2$={sigma2[j, 0].item():g}"
        gap = to_numpy(fit.history[j] - greedy.losses[j, -1])
        axes[0, 0].plot(np.arange(1, len(gap) + 1), np.maximum(gap, 1e-16), color=color, label=label)
        axes[0, 1].plot(steps, to_numpy(greedy.alphas[j] * h[j]), color=color, label=label)
        axes[0, 1].plot(steps, to_numpy(fit.alphas[j] * h[j]), "o", color=color, ms=4)
    axes[0, 0].set(xlabel="Adam step", ylabel="final loss minus greedy's", xscale="log", yscale="log")
    axes[0, 1].set(xlabel="step t", ylabel=r"$\alpha^{(t)} h$")
    axes[0, 0].legend(fontsize="small")
    return fig


def unrolled_sgd_graph(steps=2, ax=None):
    """The paper's Figure 4: SGD unrolled as a computation graph, the learning rate an input.

    Draws the steps ``theta_t = theta_{t-1} - alpha g_t`` with
    ``g_t = grad l_t(theta_{t-1})`` on the minibatch ``(X_t, y_t)``: weight
    nodes on the middle row, each step's minibatch and gradient above it, the
    one learning-rate node ``alpha`` below with an edge into every step, and
    the meta-objective ``L(theta_T)`` at the end, with the hypergradient
    ``dL(theta_T)/d alpha`` as a dashed edge back to ``alpha``. ``steps``
    (>= 1) steps are drawn as ``1 .. steps``; with ``steps >= 2`` the last one
    is step ``T``, after an ellipsis standing for the steps in between.
    Returns the axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.9 * steps + 3.2, 3.4))
    # Weight nodes left to right; None marks the ellipsis between step steps-1 and step T.
    labels = ["0"] + [str(t) for t in range(1, steps)]
    labels += [None, "T-1", "T"] if steps >= 2 else ["T"]
    gap = 2.6
    xs, x = [], 0.0
    for i, name in enumerate(labels):
        xs.append(x)
        nxt = labels[i + 1] if i + 1 < len(labels) else ""
        x += gap * (0.6 if name is None or nxt is None else 1.0)
    style = dict(ha="center", va="center", fontsize=12, zorder=3)

    def node(x, y, text, color, shape="round,pad=0.3"):
        ax.text(x, y, text, bbox=dict(boxstyle=shape, fc=color, ec="0.25", lw=1.0), **style)

    def edge(start, end, color="0.3", ls="-", rad=0.0, shrink=15):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color=color,
                                     ls=ls, lw=1.2, shrinkA=shrink, shrinkB=shrink, zorder=2,
                                     connectionstyle=f"arc3,rad={rad}"))

    alpha_xy = ((xs[0] + xs[-1]) / 2, -2.0)
    for i, name in enumerate(labels):
        if name is None:
            ax.text(xs[i], 0, r"$\cdots$", fontsize=16, ha="center", va="center")
            continue
        node(xs[i], 0, rf"$\theta_{{{name}}}$", "#dbe9f6")
        if i == 0:
            continue
        prev, x_prev = labels[i - 1], xs[i - 1]
        if prev is None:  # the edge out of the ellipsis
            edge((x_prev, 0), (xs[i], 0), ls=":", shrink=10)
            continue
        mid = (x_prev + xs[i]) / 2
        node(mid, 2.2, rf"$X_{{{name}}}, y_{{{name}}}$", "#eeeeee", "square,pad=0.25")
        node(mid, 1.1, rf"$g_{{{name}}}$", "#fde3c8")
        edge((mid, 2.2), (mid, 1.1))                       # minibatch -> gradient
        edge((x_prev, 0), (mid, 1.1), rad=-0.2)            # weights -> gradient
        edge((mid, 1.1), (xs[i], 0), rad=-0.2)             # gradient -> update
        edge((x_prev, 0), (xs[i], 0))                      # weights -> update
        edge(alpha_xy, (xs[i], 0), color="tab:red", rad=0.08)  # learning rate -> update
        if i + 1 < len(labels) and labels[i + 1] is None:
            edge((xs[i], 0), (xs[i + 1], 0), ls=":", shrink=10)
    node(*alpha_xy, r"$\alpha$", "#f8c9c4", "circle,pad=0.3")
    x_end = xs[-1] + 1.3 * gap
    node(x_end, 0, r"$L(\theta_T)$", "#d7efd2")
    edge((xs[-1], 0), (x_end, 0))
    edge((x_end, 0), alpha_xy, color="tab:red", ls="--", rad=-0.3, shrink=22)
    ax.text(x_end, -1.55, "hypergradient\n" + r"$\partial L(\theta_T) / \partial \alpha$",
            ha="center", va="top", fontsize=10, color="tab:red")
    ax.text(x_end + 0.6, 2.2, r"$g_t = \nabla_\theta\, \ell(X_t, y_t; \theta_{t-1})$" "\n"
            r"$\theta_t = \theta_{t-1} - \alpha\, g_t$", ha="right", va="center", fontsize=10,
            multialignment="left")
    ax.set(xlim=(-0.7, x_end + 1.0), ylim=(-2.9, 2.8))
    ax.set_axis_off()
    return ax

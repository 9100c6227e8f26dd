"""Figures of the chapter "Beyond the paper" (``beyond``), drawn from a result of
:func:`shortbias_lib.experiments.beyond.experiment.run_beyond` and the quantities the chapter derives from it."""

import math

import numpy as np


def plot_horizon_bias(horizons, eff, eff_det, cost_const, cost_decay, greedy_ratio, final_horizon):
    """The bias across horizons on the noisy quadratic.

    Left: the best effective learning rate ``alpha / (1 - mu)`` of a constant schedule for each
    horizon, noisy (``eff``) and deterministic (``eff_det``). Right: the loss at ``final_horizon``
    of each horizon's best constant and decay schedule over the best one for ``final_horizon``
    (``cost_const``, ``cost_decay``), and the greedy schedule's (dashed, ``greedy_ratio``).
    """
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(6.6, 3.4))
    ax1.loglog(horizons, eff, "o-", label=r"noisy ($s = 1$)")
    ax1.loglog(horizons, eff_det, "s--", label="deterministic")
    ax1.set(xlabel="horizon T (steps)", ylabel=r"best effective lr $\alpha/(1-\mu)$")
    ax1.legend()
    ax2.loglog(horizons, cost_const, "o-", label=r"constant $(\alpha, \mu)$")
    ax2.loglog(horizons, cost_decay, "^-", label=r"decay $\alpha_0/(1+t/K)^\beta$, $\mu=0.9$")
    ax2.axhline(greedy_ratio, color="tab:blue", ls="--", label="greedy / best constant")
    ax2.axhline(1, color="k", lw=0.5)
    ax2.set(xlabel="horizon T used to choose the schedule (steps)",
            ylabel=f"loss at T = {final_horizon} / best loss at T = {final_horizon}")
    ax2.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_decay_choices(horizons, final_horizon, alpha0, beta, cost_decay, mnist_runs=()):
    """Best inverse-time decay schedule for each horizon, as a fraction of the longest horizon.

    Three panels: the best ``alpha_0``, the best decay exponent ``beta`` and the loss at the
    longest horizon over its own best, for the noisy quadratic (``horizons`` over
    ``final_horizon``) and for each MNIST run of ``mnist_runs`` (dicts of the offline
    experiment's ``label``, ``horizons``, ``alpha0``, ``beta`` and ``final`` training loss);
    diverged (non-finite) points are left out. One legend for all panels, above them, so that
    it covers no data.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(6.8, 3.3), layout="constrained")
    x = horizons / final_horizon
    axes[0].loglog(x, alpha0, "^-", label="noisy quadratic")
    axes[1].loglog(x, beta, "^-")
    axes[2].loglog(x, cost_decay, "^-")
    for run, marker in zip(mnist_runs, "os"):
        xm = run["horizons"] / run["horizons"][-1]
        ok, okf = np.isfinite(run["alpha0"]), np.isfinite(run["final"])
        axes[0].loglog(xm[ok], run["alpha0"][ok], marker + "-", label=run["label"].replace("`", ""))
        axes[1].loglog(xm[ok], run["beta"][ok], marker + "-")
        axes[2].loglog(xm[okf], run["final"][okf] / run["final"][-1], marker + "-")
    axes[0].set(xlabel=r"horizon $T / T_{\max}$", ylabel=r"best $\alpha_0$")
    axes[1].set(xlabel=r"horizon $T / T_{\max}$", ylabel=r"best decay exponent $\beta$")
    axes[2].set(xlabel=r"horizon $T / T_{\max}$", ylabel=r"loss at $T_{\max}$ / best at $T_{\max}$")
    axes[2].axhline(1, color="k", lw=0.5)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=min(3, 1 + len(mnist_runs)),
               fontsize="small")
    return fig


def plot_greedy_maps(ratio, kappas, noises, gammas):
    """Maps of greedy over optimized final loss (``ratio[gamma, kappa, noise]``).

    One panel per preconditioner exponent in ``gammas``, two a row so that each cell's
    number stays legible; log10 colour over condition number and noise scale, the value
    written in each cell (two digits below 10).
    """
    import matplotlib.pyplot as plt

    n_rows = (len(gammas) + 1) // 2
    fig, axes = plt.subplots(n_rows, 2, figsize=(6.6, 3.1 * n_rows), squeeze=False, constrained_layout=True)
    used = axes.flat[:len(gammas)]
    for ax in axes.flat[len(gammas):]:
        ax.axis("off")
    vmax = max(1.0, float(np.nanmax(np.log10(ratio))))
    for g_i, ax in enumerate(used):
        im = ax.imshow(np.log10(ratio[g_i]), origin="lower", cmap="viridis", vmin=0, vmax=vmax,
                       aspect="auto")
        for i in range(len(kappas)):
            for j in range(len(noises)):
                value = ratio[g_i, i, j]
                ax.text(j, i, f"{value:.0f}" if value >= 10 else f"{value:.2g}", ha="center", va="center",
                        fontsize="small", color="w" if np.log10(ratio[g_i, i, j]) < 0.6 * vmax else "k")
        ax.set_xticks(range(len(noises)), [f"{s:g}" for s in noises], rotation=45)
        ax.set_yticks(range(len(kappas)), [f"{k:g}" for k in kappas])
        ax.set(xlabel="noise scale s", ylabel=r"condition number $\kappa$",
               title=rf"preconditioner $h^{{{gammas[g_i]:g}}}$")
    fig.colorbar(im, ax=list(used), label="log10 greedy / optimized")
    return fig


def plot_pes_quadratic(arrays, runs):
    """Truncated hypergradient against PES on the noisy quadratic (the ``pes_*`` arrays).

    Left: the exact gradient of the long-horizon meta-objective over ``log alpha``, the
    truncated estimate summed over an episode, and PES's Monte Carlo mean (of ``runs``
    episodes) with two standard errors; dotted: the true optimum and the truncated fixed
    point. Right: ``log alpha`` during online meta-optimization with each estimator.
    """
    import matplotlib.pyplot as plt

    opt, tfix = float(arrays["pes_opt"]), float(arrays["pes_trunc_fixed"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(6.8, 3.4))
    grid = arrays["pes_grid"]
    ok = np.isfinite(arrays["pes_exact_grad"]) & np.isfinite(arrays["pes_trunc_grad"]) & np.isfinite(arrays["pes_F"])
    ax1.plot(grid[ok], arrays["pes_exact_grad"][ok], "k-", label=r"exact $\nabla F$")
    ax1.plot(grid[ok], arrays["pes_trunc_grad"][ok], "-", color="tab:orange", label="truncated")
    ax1.errorbar(arrays["pes_check_theta"], arrays["pes_check_mean"], yerr=2 * arrays["pes_check_se"], fmt="o",
                 color="tab:blue", label=f"PES (mean of {runs} episodes)")
    ax1.axhline(0, color="k", lw=0.5)
    ax1.axvline(opt, color="k", ls=":")
    ax1.axvline(tfix, color="tab:orange", ls=":")
    ax1.set(xlabel=r"$\theta = \log\alpha$", ylabel=r"gradient estimate ($dF/d\theta$)",
            ylim=(-3, 3))
    ax1.legend(fontsize="small")
    steps = np.arange(len(arrays["pes_traj_pes"]))
    ax2.plot(steps, arrays["pes_traj_truncated"][:, 0], color="tab:orange", label="truncated")
    ax2.plot(steps, arrays["pes_traj_pes"][:, 0], color="tab:blue", lw=0.8, label="PES")
    ax2.axhline(opt, color="k", ls=":", label=r"optimum of $F$")
    ax2.axhline(tfix, color="tab:orange", ls=":", label="truncated fixed point")
    ax2.set(xlabel="meta-step (window)", ylabel=r"$\log\alpha$")
    ax2.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_pes_mnist(arrays):
    """Truncated hypergradient against PES on the MNIST decay schedule (the ``mnist_*`` arrays).

    Top: both components of the gradient of ``F`` at each checked ``(alpha_0, beta)``: exact
    (bars), truncated, and PES's mean with two standard errors. Bottom:
    ``(log10 alpha_0, log10 beta)`` during online meta-optimization with each estimator.
    """
    import matplotlib.pyplot as plt

    m_exact, m_trunc = arrays["mnist_check_exact"], arrays["mnist_check_trunc"]
    m_pes, m_se = arrays["mnist_check_pes_mean"], arrays["mnist_check_pes_se"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.8, 6.4))
    labels_x = []
    for i, th in enumerate(arrays["mnist_check_theta"]):
        for c, comp in enumerate([r"$\partial/\partial\log\alpha_0$", r"$\partial/\partial\log\beta$"]):
            x0 = 3 * i + c * 1.2
            ax1.bar(x0, m_exact[i, c], width=0.35, color="k", label="exact" if i + c == 0 else None)
            ax1.plot(x0 + 0.3, m_trunc[i, c], "s", color="tab:orange",
                     label="truncated" if i + c == 0 else None)
            ax1.errorbar(x0 + 0.55, m_pes[i, c], yerr=2 * m_se[i, c], fmt="o", color="tab:blue",
                         label="PES" if i + c == 0 else None)
            labels_x.append((x0 + 0.25,
                             f"{comp}\n" + rf"$\alpha_0$={np.exp(th[0]):.3g}, $\beta$={np.exp(th[1]):.3g}"))
    ax1.set_xticks([x for x, _ in labels_x], [t for _, t in labels_x], fontsize="small")
    ax1.axhline(0, color="k", lw=0.5)
    ax1.set(ylabel=r"gradient of $F$")
    ax1.legend(fontsize="small")
    for method, color in (("truncated", "tab:orange"), ("pes", "tab:blue")):
        tr = arrays[f"mnist_traj_{method}"] / math.log(10)
        ax2.plot(tr[:, 0], tr[:, 1], "-", color=color, lw=0.8,
                 label="truncated" if method == "truncated" else "PES")
        ax2.plot(tr[-1, 0], tr[-1, 1], "o", color=color)
    ax2.plot(*(arrays["mnist_traj_pes"][0] / math.log(10)), "k*", ms=10, label="start")
    ax2.set(xlabel=r"$\log_{10}\alpha_0$", ylabel=r"$\log_{10}\beta$")
    ax2.legend(fontsize="small")
    fig.tight_layout()
    return fig

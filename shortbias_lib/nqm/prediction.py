"""The noisy quadratic measured at a network's warm start, and the schedules it predicts.

A measurement (:func:`measure`, built on :mod:`shortbias_lib.nqm.spectrum`) becomes a diagonal
noisy quadratic (:func:`build_nqm`) in the Hessian's eigenbasis:

* each of the top ``k`` Ritz pairs ``(lambda_i, u_i)`` is one dimension with ``h = lambda_i``,
  initial distance ``E[theta_0] = u_i^T g / lambda_i`` (the Newton step along ``u_i``, ``g``
  the full-batch gradient) and noise ``sigma2 = Var[u_i^T g_B] / lambda_i^2`` (the
  Section 2 model's gradient noise along ``i`` is ``h_i c_i``, ``Var = h_i^2 sigma2_i``);
* the rest of the spectrum (the deflated operator) is grouped into log-spaced curvature
  bins. A bin of ``n_b`` directions with one curvature behaves as one dimension whose
  second moments are summed (the dynamics are linear in ``A_0`` and ``sigma2``), so it is
  one dimension with ``h = h_b`` (mean node in the bin), ``A_0 = G_b / h_b^2`` (``G_b`` the
  gradient's squared norm in the bin, from Lanczos started at ``g``) and
  ``sigma2 = N_b / h_b^2`` (``N_b`` the noise variance in the bin, from the noise along the
  SLQ Ritz vectors times their quadrature weights);
* curvatures at or below ``h_floor`` (flat and negative directions) are dropped: the
  quadratic model has no minimum there; what they hold is reported.

A gradient measured on ``N`` examples has its sampling noise (``noise at B * B / N`` per
direction) subtracted from its squares. The velocity of the warm start is not carried over
(the Section 2 dynamics start at rest) and noise correlations between directions are dropped
(the diagonal approximation).

:func:`horizon_losses` runs the exact second-moment dynamics of Section 2
(:func:`shortbias_lib.nqm.dynamics.second_moment_step`, unchanged) for many inverse-time
schedules at once and records only the losses at the horizons; :func:`predict` picks each
horizon's best schedule on a grid of the authors' ranges.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import spectrum as sp
from .dynamics import second_moment_step
from .problem import DTYPE, check_problem
from ..engine.schedules import InverseTime

BLOWUP = 1e100  # an expected loss above this has diverged


# ---------------------------------------------------------------- measuring

@dataclass(frozen=True)
class Budget:
    """The Lanczos budgets of a measurement: the top ``k`` Ritz pairs from ``top_steps`` steps,
    ``probes`` x ``slq_steps`` for the deflated density, ``grad_steps`` from the gradient."""

    k: int
    top_steps: int
    probes: int
    slq_steps: int
    grad_steps: int


def measure(apply, params, images, labels, *, k, top_steps, probes, slq_steps, grad_steps,
            batch_size=100, noise_examples=None, seed=0):
    """:func:`measure_operator` for a network at ``params`` on ``(images, labels)`` (the
    Hessian and gradient on all of them, the noise on the first ``noise_examples``)."""
    matvec = sp.hvp_operator(apply, params, images, labels)
    grad, loss = sp.full_gradient(apply, params, images, labels)
    n_noise = len(labels) if noise_examples is None else min(noise_examples, len(labels))
    x, y = images[:n_noise], labels[:n_noise]

    def project(directions):
        return sp.per_example_projections(apply, params, x, y, directions)

    return measure_operator(matvec, grad, loss, project,
                            sp.total_noise(apply, params, x, y, batch_size),
                            Budget(k, top_steps, probes, slq_steps, grad_steps), batch_size=batch_size,
                            seed=seed, grad_examples=len(labels))


def measure_operator(matvec, grad, loss, project, total_noise, budget, *, batch_size=100, seed=0,
                     grad_examples=0):
    """Everything :func:`build_nqm` needs, from a Hessian operator ``matvec``, the full-batch
    gradient ``grad`` and ``project(directions) -> (N, r)`` per-example gradient components,
    measured with the Lanczos budgets ``budget`` (a :class:`Budget`).

    Returns a dict of numpy arrays: ``top_values``, ``top_residuals``, ``top_grad``
    (``u_i^T g``), ``top_noise`` and ``top_noise_se`` (variance at ``batch_size``),
    ``slq_nodes``, ``slq_weights``, ``slq_noise`` (probes x steps), ``grad_nodes``,
    ``grad_masses`` (deflated), ``dim`` (directions left after deflation), ``loss``,
    ``grad_norm2``, ``total_noise`` (``tr C / B``) and ``noise_corr`` (top block), and
    ``batch_size`` and ``grad_examples`` (the sample behind ``grad``; 0 if it is exact).
    """
    k = budget.k
    values, U, residuals = sp.top_eigenpairs(matvec, k, budget.top_steps, seed=seed)
    nodes, weights, Y = sp.slq(matvec, budget.probes, budget.slq_steps, deflate=U, seed=seed + 1)
    g_nodes, g_masses = sp.spectral_measure(matvec, grad, budget.grad_steps, deflate=U)
    proj = project(torch.cat([U, Y.reshape(matvec.size, -1)], dim=1))
    var, se = sp.noise_variance(proj, batch_size)
    return {
        "top_values": values.numpy(), "top_residuals": residuals.numpy(),
        "top_grad": (U.t() @ grad).numpy(), "top_noise": var[:k].numpy(),
        "top_noise_se": se[:k].numpy(), "slq_nodes": nodes.numpy(), "slq_weights": weights.numpy(),
        "slq_noise": var[k:].reshape(nodes.shape).numpy(), "grad_nodes": g_nodes.numpy(),
        "grad_masses": g_masses.numpy(), "dim": np.asarray(matvec.size - k), "loss": np.asarray(loss),
        "grad_norm2": np.asarray(float(grad @ grad)), "total_noise": np.asarray(float(total_noise)),
        "noise_corr": sp.noise_correlation(proj[:, :k]).numpy(),
        "batch_size": np.asarray(batch_size), "grad_examples": np.asarray(grad_examples),
    }


# ---------------------------------------------------------------- the noisy quadratic

def bulk_bins(m, h_floor, bins):
    """Per log-spaced curvature bin of the deflated spectrum (``h_floor`` to the top):
    ``count``, ``h`` (weighted mean node), ``noise`` (``N_b``) and ``grad2`` (``G_b``)."""
    dim = float(m["dim"])
    carried = m["grad_nodes"][m["grad_masses"] > 1e-12 * float(m["grad_norm2"])]
    high = max(float(np.max(m["slq_nodes"])), float(np.max(carried, initial=0.0))) * (1 + 1e-9)
    edges = np.geomspace(h_floor, high, bins + 1)
    P = m["slq_nodes"].shape[0]
    out = {key: np.zeros(bins) for key in ("count", "h", "noise", "grad2")}
    s_bin = np.digitize(m["slq_nodes"], edges) - 1
    g_bin = np.digitize(m["grad_nodes"], edges) - 1
    for b in range(bins):
        inside, g_inside = s_bin == b, g_bin == b
        w = m["slq_weights"] * inside
        out["count"][b] = dim * w.sum() / P
        out["noise"][b] = dim * (w * m["slq_noise"]).sum() / P
        out["grad2"][b] = m["grad_masses"][g_inside].sum()
        if w.sum() > 0:
            out["h"][b] = (w * m["slq_nodes"]).sum() / w.sum()
        elif g_inside.any():
            gm = m["grad_masses"][g_inside]
            out["h"][b] = (gm * m["grad_nodes"][g_inside]).sum() / max(gm.sum(), 1e-300)
    out["edges"] = edges
    return out


def build_nqm(m, h_floor, bins):
    """The noisy quadratic of a measurement: ``(h, sigma2, mean0, var0)`` numpy arrays and a
    dict ``info`` (the bins, and the share of directions, gradient energy and noise dropped
    below ``h_floor``)."""
    top = m["top_values"] > h_floor
    h_top = m["top_values"][top]
    bulk = bulk_bins(m, h_floor, bins)
    used = (bulk["h"] > 0) & ((bulk["grad2"] > 0) | (bulk["noise"] > 0))
    h = np.concatenate([h_top, bulk["h"][used]])
    sigma2 = np.concatenate([m["top_noise"][top], bulk["noise"][used]]) / h ** 2
    # A gradient averaged over N examples carries noise of variance (noise at B) * B / N:
    # subtracted from its squares, they estimate the full training set's (clipped at 0).
    shrink = float(m["batch_size"]) / float(m["grad_examples"]) if m.get("grad_examples", 0) else 0.0
    g2 = np.concatenate([m["top_grad"][top] ** 2 - shrink * m["top_noise"][top],
                         bulk["grad2"][used] - shrink * bulk["noise"][used]])
    mean0 = np.sqrt(np.clip(g2, 0.0, None)) / h
    below_w = (m["slq_weights"] * (m["slq_nodes"] <= h_floor)).sum() / m["slq_weights"].shape[0]
    noise_kept = m["top_noise"][top].sum() + bulk["noise"].sum()
    info = {"bins": bulk, "top_kept": int(top.sum()), "dropped_directions": float(below_w),
            "dropped_grad2": float(m["grad_masses"][m["grad_nodes"] <= h_floor].sum() / m["grad_norm2"]),
            "noise_covered": float(noise_kept / m["total_noise"]),
            "initial_excess": float(0.5 * (h * mean0 ** 2).sum()),
            "grad_noise_removed": float(shrink * (m["top_noise"][top].sum() + bulk["noise"][used].sum()))}
    check_problem(h, sigma2, mean0, np.zeros_like(h))
    return (h, sigma2, mean0, np.zeros_like(h)), info


def nqm_from_quadratic(H, C, w0, w_star, batch_size):
    """The noisy quadratic of a known quadratic ``1/2 (w - w*)^T H (w - w*)`` whose
    per-example gradient noise has covariance ``C`` (exact eigen-decomposition, for tests):
    ``h`` = eigenvalues, ``E[theta_0] = |U^T (w0 - w*)|``, ``sigma2 = diag(U^T C U) / (B h^2)``."""
    h, U = np.linalg.eigh(H)
    noise = np.einsum("ni,nm,mi->i", U, C, U) / batch_size
    return h, noise / h ** 2, np.abs(U.T @ (w0 - w_star)), np.zeros_like(h)


# ---------------------------------------------------------------- schedules

def horizon_losses(nqm, log10_alpha0, log10_beta, K, mu, horizons, check_every=50):
    """Expected excess loss ``1/2 sum_i h_i A_t(theta_i)`` after each horizon, for ``S``
    inverse-time schedules ``alpha_t = alpha_0 / (1 + t/K)^beta`` with momentum ``mu``
    (Section 2's exact dynamics, from rest). Returns ``(S, H)``; a diverged schedule is inf."""
    h, sigma2, mean0, var0 = (torch.as_tensor(np.asarray(a), dtype=DTYPE) for a in nqm)
    alpha0 = 10.0 ** torch.as_tensor(np.asarray(log10_alpha0), dtype=DTYPE)[:, None]
    beta = 10.0 ** torch.as_tensor(np.asarray(log10_beta), dtype=DTYPE)[:, None]
    S, horizons = alpha0.shape[0], [int(t) for t in horizons]
    a_theta = (mean0 ** 2 + var0).expand(S, -1).clone()
    a_v, c = torch.zeros_like(a_theta), torch.zeros_like(a_theta)
    out = torch.full((S, len(horizons)), math.inf, dtype=DTYPE)
    alive = torch.ones(S, dtype=torch.bool)
    schedule = InverseTime(alpha0, beta, K)
    for t in range(max(horizons)):
        alpha = schedule.lr(t)
        a_theta, a_v, c = second_moment_step(a_theta, a_v, c, h, sigma2, alpha, mu)
        if (t + 1) % check_every == 0 or (t + 1) in horizons:
            loss = 0.5 * (h * a_theta).sum(-1)
            bad = ~torch.isfinite(loss) | (loss > BLOWUP)
            if bad.any():
                alive &= ~bad
                a_theta[bad], a_v[bad], c[bad] = 0.0, 0.0, 0.0
            if (t + 1) in horizons:
                out[:, horizons.index(t + 1)] = torch.where(alive, loss, torch.full_like(loss, math.inf))
    return out.numpy()


def schedule_grid(log10_alpha0_range, log10_beta_range, n_alpha, n_beta):
    """A regular grid in ``(log10 alpha_0, log10 beta)``: two flat arrays of ``n_alpha * n_beta``."""
    la = np.linspace(*log10_alpha0_range, n_alpha)
    lb = np.linspace(*log10_beta_range, n_beta)
    A, B = np.meshgrid(la, lb, indexing="ij")
    return A.ravel(), B.ravel()


def predict(nqm, horizons, K=5000.0, mu=0.9, log10_alpha0_range=(-3.0, -0.3),
            log10_beta_range=(-2.0, 2.3), n_alpha=40, n_beta=40):
    """Each horizon's best schedule on the grid and the longest horizon's loss under it.

    Returns a dict: ``log10_alpha0``, ``log10_beta`` (per horizon), ``loss_at_T`` (its own
    horizon), ``final_loss`` (after ``max(horizons)`` steps), ``loss_ratio`` (first
    horizon's choice over the last one's, at the last horizon), ``beta_ratio`` and the grid
    (``grid_a``, ``grid_b``, ``grid_losses`` (S, H)).
    """
    la, lb = schedule_grid(log10_alpha0_range, log10_beta_range, n_alpha, n_beta)
    losses = horizon_losses(nqm, la, lb, K, mu, horizons)
    best = np.argmin(losses, axis=0)
    final = losses[best, -1]
    return {"log10_alpha0": la[best], "log10_beta": lb[best],
            "loss_at_T": losses[best, np.arange(len(best))], "final_loss": final,
            "loss_ratio": float(final[0] / final[-1]), "beta_ratio": float(10 ** (lb[best[0]] - lb[best[-1]])),
            "grid_a": la, "grid_b": lb, "grid_losses": losses, "shape": (n_alpha, n_beta)}


# ---------------------------------------------------------------- the chapter's run

# Per-profile sizes: examples (Hessian, gradient and noise subsample of the training set),
# Lanczos budgets (top pairs ``k`` from ``top_steps``; ``probes`` x ``slq_steps`` for the
# density; ``grad_steps`` for the gradient's measure), curvature bins and schedule grids
# (main, and the coarser one of the sensitivity runs).
SIZES = {
    "smoke": {"examples": 300, "k": 4, "top_steps": 10, "probes": 2, "slq_steps": 6, "grad_steps": 6,
              "bins": 8, "grid": (6, 6), "alt_grid": (4, 4), "later": (5,), "later_k": 3, "later_steps": 6},
    "quick": {"examples": 2000, "k": 20, "top_steps": 50, "probes": 4, "slq_steps": 25, "grad_steps": 30,
              "bins": 16, "grid": (26, 26), "alt_grid": (12, 12), "later": (2000,), "later_k": 3,
              "later_steps": 15},
    "paper": {"examples": 10000, "k": 50, "top_steps": 120, "probes": 10, "slq_steps": 60,
              "grad_steps": 80, "bins": 24, "grid": (60, 60), "alt_grid": (30, 30),
              "later": (1000, 5000, 20000), "later_k": 10, "later_steps": 60},
}
FLOOR = 1e-3              # curvatures below FLOOR * lambda_max are dropped (main prediction)
ALT_FLOORS = (1e-2, 1e-4)  # the sensitivity runs


def subsample(images, labels, n, seed):
    """``n`` training examples drawn without replacement with ``seed``."""
    generator = torch.Generator().manual_seed(int(seed))
    index = torch.randperm(len(labels), generator=generator)[:n]
    return images[index], labels[index]


def predict_all(m, sizes, horizons, K, mu, ranges):
    """The main prediction (``FLOOR``) and the sensitivity ones (``ALT_FLOORS``, coarser grid):
    a dict ``floor -> (nqm, info, prediction)``."""
    lam = float(m["top_values"][0])
    out = {}
    for floor in (FLOOR,) + ALT_FLOORS:
        nqm, info = build_nqm(m, floor * lam, sizes["bins"])
        grid = sizes["grid"] if floor == FLOOR else sizes["alt_grid"]
        out[floor] = (nqm, info, predict(nqm, horizons, K, mu, *ranges, *grid))
    return out


def later_points(apply, state, batches, schedule, mu, steps, images, labels, *, k, lanczos_steps,
                 batch_size=100, seed=0):
    """How the local quadratic moves along a schedule: train from ``state`` with the learning
    rates ``schedule`` (a :class:`~shortbias_lib.engine.schedules.Schedule`, e.g. ``InverseTime``) and
    momentum ``mu`` on ``batches`` (a function of the step) and, after each of
    ``steps``, measure on ``(images, labels)`` the loss, the squared gradient norm, the top
    ``k`` Ritz values and the total noise ``tr C / B``. Returns a list of dicts (step 0 first)."""
    from ..engine.training import train

    out, done = [], 0
    for target in (0,) + tuple(int(t) for t in steps):
        if target > done:
            state = train(apply, state, batches, target - done, schedule, mu, raise_on_divergence=True).state
            done = target
        matvec = sp.hvp_operator(apply, state.params, images, labels)
        grad, loss = sp.full_gradient(apply, state.params, images, labels)
        values, _, _ = sp.top_eigenpairs(matvec, k, lanczos_steps, seed=seed)
        out.append({"step": target, "loss": loss, "grad_norm2": float(grad @ grad),
                    "top_values": values.numpy(),
                    "total_noise": sp.total_noise(apply, state.params, images, labels, batch_size)})
    return out


# ---------------------------------------------------------------- figures

def plot_measurement(m, info, floor_h):
    """Three panels (two a row, the fourth place for the third's legend, so that the text is
    legible in the book's column): the top Ritz values (with residual bounds), the deflated
    spectral density (SLQ, directions per bin) and, against curvature, the minibatch noise
    variance and the squared mean gradient per direction (top pairs as points, bulk bins as
    lines)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(6.8, 5.6))
    axes = axes.ravel()
    k = len(m["top_values"])
    axes[0].errorbar(np.arange(1, k + 1), m["top_values"], yerr=m["top_residuals"], fmt="o", ms=3)
    axes[0].set(xlabel="index $i$ (descending)", ylabel=r"Ritz value $\lambda_i$", yscale="log",
                title="top of the Hessian spectrum")
    nodes, weights = m["slq_nodes"].ravel(), m["slq_weights"].ravel()
    edges = np.linspace(nodes.min(), nodes.max(), 40)
    counts, _ = np.histogram(nodes, edges, weights=weights * float(m["dim"]) / m["slq_nodes"].shape[0])
    axes[1].stairs(np.maximum(counts, 1e-1), edges, fill=True, alpha=0.6)
    axes[1].set_ylim(bottom=0.5)
    axes[1].axvline(floor_h, color="k", ls="--", lw=1, label=f"floor {floor_h:.1e}")
    axes[1].set(xlabel="curvature (eigenvalue)", ylabel="directions per bin (SLQ)", yscale="log",
                title="rest of the spectrum (deflated)")
    axes[1].legend()
    bins = info["bins"]
    used = bins["count"] > 0
    ax = axes[2]
    ax.errorbar(m["top_values"], m["top_noise"], yerr=m["top_noise_se"], fmt="o", ms=3,
                label="noise var., top pairs")
    ax.plot(m["top_values"], m["top_grad"] ** 2, "x", label="(mean grad.)$^2$, top pairs")
    ax.plot(bins["h"][used], bins["noise"][used] / bins["count"][used], "-", label="noise var., bulk bins")
    g_used = used & (bins["grad2"] > 0)
    ax.plot(bins["h"][g_used], bins["grad2"][g_used] / bins["count"][g_used], "--",
            label="(mean grad.)$^2$, bulk bins")
    ax.set(xscale="log", yscale="log", xlabel="curvature", ylabel="per direction (batch 100)",
           title="gradient noise and signal")
    _legend_in(axes[3], ax)
    fig.tight_layout()
    return fig


def _legend_in(place, ax):
    """``ax``'s legend drawn in the otherwise empty axes ``place``."""
    place.axis("off")
    place.legend(*ax.get_legend_handles_labels(), loc="center", frameon=False)


def curves(predictions, replicate=None):
    """``(label, prediction, style)`` for :func:`plot_comparison`: each floor of
    :func:`predict_all` (the main one thick) and a replicate measurement's main prediction."""
    out = [(f"noisy quadratic, floor {floor:g}" + r"$\lambda_{max}$", pred,
            dict(marker="o", lw=2) if floor == FLOOR else dict(ls=":", lw=1))
           for floor, (_, _, pred) in predictions.items()]
    if replicate is not None:
        out.append(("second measurement, floor " + f"{FLOOR:g}" + r"$\lambda_{max}$", replicate,
                    dict(marker="^", ls="--", lw=1.5)))
    return out


def plot_comparison(horizons, lines, rows, measured_final, beta_range, alpha_range):
    """Three panels against horizon (two a row, the fourth place for the legend): best beta,
    best alpha_0 (measured with 95% bootstrap intervals; predicted, one line per entry of
    ``lines`` from :func:`curves`), and the loss after the longest horizon of each horizon's
    choice relative to the longest horizon's own."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(6.8, 5.8))
    axes = axes.ravel()
    T = np.asarray(horizons)
    for key, ax, rng in (("beta", axes[0], beta_range), ("alpha0", axes[1], alpha_range)):
        value = np.array([r[key] for r in rows])
        low = np.array([r[key + "_low"] for r in rows])
        high = np.array([r[key + "_high"] for r in rows])
        ax.errorbar(T, value, yerr=[value - low, high - value], fmt="ks", ms=5, capsize=3,
                    label="network (archived run)")
        for label, pred, style in lines:
            ax.plot(T, 10.0 ** pred["log10_beta" if key == "beta" else "log10_alpha0"], label=label, **style)
        for bound in rng:
            ax.axhline(10.0 ** bound, color="0.6", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="horizon $T$ (steps)",
               ylabel=r"best $\beta$" if key == "beta" else r"best $\alpha_0$")
    axes[0].set_title("decay exponent\n(grey: sampled range)")
    axes[1].set_title("initial learning rate")
    _legend_in(axes[3], axes[0])
    ax = axes[2]
    ax.plot(T, np.asarray(measured_final) / measured_final[-1], "ks-", label="network (trained optima)")
    for label, pred, style in lines:
        ax.plot(T, pred["final_loss"] / pred["final_loss"][-1], label=label, **style)
    ax.set(xscale="log", yscale="log", xlabel="horizon $T$ whose best schedule is used",
           ylabel=f"loss at {T[-1]} /\nthat of the {T[-1]}-step choice", title="cost of a short horizon")
    fig.tight_layout()
    return fig


__all__ = ["Budget", "SIZES", "FLOOR", "ALT_FLOORS", "subsample", "predict_all", "later_points", "plot_measurement",
           "curves", "plot_comparison", "measure", "measure_operator", "bulk_bins", "build_nqm", "nqm_from_quadratic",
           "horizon_losses", "schedule_grid", "predict"]

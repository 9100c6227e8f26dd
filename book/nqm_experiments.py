# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The noisy quadratic: Figures 1-3
#
# This chapter regenerates the experiments of Section 2 of the paper: the
# two-dimensional illustration (Figure 1), the short-horizon objectives of
# Figure 2, and the comparison of optimized, greedy and fixed schedules of
# Figure 3, with the paper's three final losses
# ({glue:text}`paper_optimized:.2f`, {glue:text}`paper_greedy:.2f`, {glue:text}`paper_fixed:.2f`
# for the optimized, greedy and fixed schedules) next to ours. Everything is computed exactly with Theorem 1 (see {doc}`nqm_theory`),
# so there is no sampling noise: the only differences from the paper come
# from the choices the paper leaves open, which we state and vary below.

# %% tags=["parameters", "remove-cell"]
profile = "quick"
device = "auto"
seed = 0
data_root = None
results = None

# %% tags=["remove-input"]
from shortbias_lib.notebook import setup

context = setup(profile, device, seed, data_root, results)

# %% tags=["remove-cell"]
# %matplotlib inline
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from myst_nb import glue

from shortbias_lib import noisy_quadratic as nq
from shortbias_lib import plotting
from shortbias_lib.profiles import pick

torch.set_num_threads(1)
chapter_start = time.perf_counter()

# %% [markdown]
# ## The problem of Section 2.3, and what we had to choose
#
# The paper specifies $N = 1000$ dimensions, the curvature distribution "from Li
# (2005), on which CG achieves its worst-case convergence rate",
# $\sigma_i^2 = 1/h_i$ and the horizon $T = 250$. Li (2005) shows that CG's
# worst case is attained on the translated Chebyshev extreme points
#
# $$ h_j = \tfrac{b+a}{2} + \tfrac{b-a}{2}\cos\tfrac{j\pi}{N-1}, \qquad j = 0, \dots, N-1, $$
#
# on $[a, b]$, so that is our spectrum, with $b = 1$ and $a = 1/\kappa$. Three things
# remain open, and each is fixed here on a stated principle:
#
# * **Scale.** Only $A_0 = \mathbb{E}[\theta_0]^2 + \mathbb{V}[\theta_0]$ per dimension
#   enters the expected loss, and $(h, A_0, \alpha) \to (ch, A_0/c, \alpha/c)$
#   leaves every loss unchanged (tested in `tests/test_noisy_quadratic.py`), so $b = 1$ loses nothing.
# * **Initial state.** The simplest isotropic start, $\mathbb{E}[\theta_0] = c_0$ in every
#   dimension and $\mathbb{V}[\theta_0] = 0$, with $c_0$ *calibrated* so that the
#   greedy schedule (Theorem 2) ends at the paper's {glue:text}`paper_greedy:.2f`. The other two
#   numbers (fixed {glue:text}`paper_fixed:.2f`, optimized {glue:text}`paper_optimized:.2f`) are then predictions, not fits.
# * **Condition number.** $\kappa$ is not given. We use $\kappa = $ {glue:text}`kappa:.0f`
#   and show below that the fixed schedule's final loss hardly depends on it once $c_0$ is calibrated.
#
# The reported losses exclude the constant $\frac12\sum_i h_i\sigma_i^2 =$ {glue:text}`noise_floor:.0f`
# of Eq. (6), which is larger than all three reported values; every loss in this
# chapter is the *excess* loss $\frac12\sum_i h_i A(\theta_i)$.

# %%
problem = nq.make_problem()
glue("kappa", problem.info["kappa"], display=False)
for _name, _value in nq.PAPER_FINAL_LOSSES.items():
    glue(f"paper_{_name}", float(_value), display=False)
glue("c0", problem.info["c0"], display=False)
glue("noise_floor", float((0.5 * problem.h * problem.sigma2).sum()), display=False)
glue("initial_loss", float(nq.dynamics(*problem.arrays, torch.zeros(1))[0]), display=False)
c0_check = nq.calibrate_c0(kappa=problem.info["kappa"], iters=40)
assert abs(c0_check - problem.info["c0"]) / problem.info["c0"] < 1e-3, c0_check
glue("c0_calibrated", c0_check, display=False)

# %% [markdown]
# Bisection on $c_0$ gives $c_0 =$ {glue:text}`c0_calibrated:.3f` for $\kappa = $ {glue:text}`kappa:.0f`
# (the library's default, {glue:text}`c0:.2f`, is this value rounded); the initial
# excess loss is then {glue:text}`initial_loss:.0f`.
#
# ## Figure 1: aggressive then decayed beats conservative
#
# A two-dimensional noisy quadratic with $h = (1, 0.02)$, $\sigma_i^2 = 1/h_i$ and
# $\theta_0 = (1, 4)$: a conservative fixed learning rate (blue) against an
# aggressive one (red) followed by exponential decay (yellow). One sampled
# trajectory of each is drawn on the contours, and the exact expected losses
# are on the right, with Monte Carlo means as dots.

# %%
h2 = torch.tensor([1.0, 0.02], dtype=torch.float64)
s2_2 = 1 / h2
m0_2 = torch.tensor([1.0, 4.0], dtype=torch.float64)
v0_2 = torch.zeros(2, dtype=torch.float64)
k_aggr, decay_steps = 100, 50
T2 = k_aggr + decay_steps
conservative = nq.constant_schedule(0.1, T2)
aggressive = nq.decayed_schedule(torch.tensor(1.0, dtype=torch.float64), k_aggr, decay_steps, 0.01)
loss_c = nq.dynamics(h2, s2_2, m0_2, v0_2, *conservative)
loss_a = nq.dynamics(h2, s2_2, m0_2, v0_2, *aggressive)
mc_c = nq.monte_carlo(h2, s2_2, m0_2, v0_2, *conservative, n_samples=2000, seed=seed, n_paths=1)
mc_a = nq.monte_carlo(h2, s2_2, m0_2, v0_2, *aggressive, n_samples=2000, seed=seed + 1, n_paths=1)
# the figure's claim, checked: conservative is ahead when the decay starts, behind at the end
assert loss_c[k_aggr] < loss_a[k_aggr] and loss_a[-1] < loss_c[-1]
glue("fig1_k", k_aggr, display=False)
glue("fig1_c_k", float(loss_c[k_aggr]), display=False)
glue("fig1_a_k", float(loss_a[k_aggr]), display=False)
glue("fig1_c_T", float(loss_c[-1]), display=False)
glue("fig1_a_T", float(loss_a[-1]), display=False)

# %% mystnb={"figure": {"caption": "Figure 1 regenerated. Left: one sampled trajectory of SGD with a conservative fixed learning rate 0.1 (blue) and with an aggressive learning rate 1.0 (red) followed by 50 steps of exponential decay (yellow), on the contours of the loss; the low-curvature direction is horizontal, and the axes are widened to hold both sampled paths. Right: exact expected excess losses (lines) and Monte Carlo means of 2000 runs (dots).", "name": "fig-nqm-1"}}
fig, axes = plotting.figure(2, width=4.6, height=3.6)
ax = axes[0, 0]
pc = mc_c.paths[:, 0].numpy()
pa = mc_a.paths[:, 0].numpy()
# contour window wide enough for both sampled paths (nothing is clipped)
_x_lo = min(-1.5, float(min(pc[:, 1].min(), pa[:, 1].min())) - 0.3)
_x_hi = max(4.5, float(max(pc[:, 1].max(), pa[:, 1].max())) + 0.3)
_y_half = max(3.0, float(np.abs(np.concatenate([pc[:, 0], pa[:, 0]])).max()) + 0.3)
plotting.quadratic_contours(ax, h2.flip(0), (_x_lo, _x_hi), (-_y_half, _y_half), levels=10)
ax.plot(pc[:, 1], pc[:, 0], color="tab:blue", lw=0.8, label="conservative, fixed")
ax.plot(pa[:k_aggr + 1, 1], pa[:k_aggr + 1, 0], color="tab:red", lw=0.8, label="aggressive")
ax.plot(pa[k_aggr:, 1], pa[k_aggr:, 0], color="gold", lw=1.2, label="then decay")
ax.plot(0, 0, "k*", ms=10)
ax.set(xlabel=r"$\theta_2$ (low curvature, $h=0.02$)", ylabel=r"$\theta_1$ (high curvature, $h=1$)")
ax.legend(fontsize="small", loc="lower right")
ax = axes[0, 1]
steps2 = np.arange(T2 + 1)
ax.plot(steps2, loss_c, color="tab:blue", label="conservative")
ax.plot(steps2[:k_aggr + 1], loss_a[:k_aggr + 1], color="tab:red", label="aggressive")
ax.plot(steps2[k_aggr:], loss_a[k_aggr:], color="gold", label="decay")
ax.plot(steps2[::10], mc_c.loss_mean[::10], ".", color="tab:blue")
ax.plot(steps2[::10], mc_a.loss_mean[::10], ".", color="tab:red")
ax.set(xlabel="step", ylabel="expected excess loss", yscale="log")
ax.legend(fontsize="small")
plt.show()

# %% [markdown]
# When the decay starts (step {glue:text}`fig1_k:d`) the aggressive schedule's expected loss is
# {glue:text}`fig1_a_k:.3f`, above the conservative {glue:text}`fig1_c_k:.3f`; after the
# 50 decay steps it is {glue:text}`fig1_a_T:.4f` against {glue:text}`fig1_c_T:.3f`. A
# meta-objective that stops before the decay prefers the conservative rate.
#
# ## Figure 2: ignoring the later decay favours small learning rates
#
# On the 1000-dimensional problem, plain SGD ($\mu = 0$) with a fixed learning
# rate $\alpha$ for $k$ steps (solid), and the same $k$ steps followed by 50 steps of
# exponential decay to $\alpha/100$ (dashed; the paper gives no decay rate, we
# chose a 100-fold decay). Dots mark each curve's best learning rate on the grid.
# The grid runs from $10^{-3}$ to {glue:text}`fig2_lr_top:.0f`, past the value 2 at which a
# fixed rate diverges in the highest-curvature direction ($h = 1$): the dashed curves
# can afford such rates for a few steps because the decay follows.

# %%
ks = pick(profile, {"smoke": [10, 50, 250], "quick": [10, 25, 50, 100, 250], "paper": [10, 25, 50, 100, 250]})
lr_top = 4.0
lrs = torch.logspace(-3, np.log10(lr_top), pick(profile, {"smoke": 30, "quick": 80, "paper": 80}),
                     dtype=torch.float64)
solid, dashed = [], []
with torch.no_grad():
    for k in ks:
        a_s, m_s = nq.constant_schedule(lrs, k)
        solid.append(nq.dynamics(*problem.arrays, a_s, m_s)[..., -1])
        a_d, m_d = nq.decayed_schedule(lrs, k, 50, 0.01)
        dashed.append(nq.dynamics(*problem.arrays, a_d, m_d)[..., -1])
solid, dashed = torch.stack(solid).numpy(), torch.stack(dashed).numpy()
# the grid stays in the range where the dynamics are finite
assert np.isfinite(solid).all() and np.isfinite(dashed).all()
best_solid = lrs.numpy()[solid.argmin(1)]
best_dashed = lrs.numpy()[dashed.argmin(1)]
# the figure's claim: after the decay, every horizon prefers a larger learning rate
assert (best_dashed > best_solid).all(), (best_solid, best_dashed)
# the solid minima are interior; dashed minima at the top of the grid are only lower bounds
assert (solid.argmin(1) < len(lrs) - 1).all()
dashed_at_edge = dashed.argmin(1) == len(lrs) - 1
n_edge = int(dashed_at_edge.sum())
glue("fig2_lr_top", lr_top, display=False)
glue("fig2_n_edge", n_edge, display=False)
glue("fig2_n_curves", len(ks), display=False)
ratio = best_dashed / best_solid
glue("fig2_ratio_phrase", Markdown(f"{'at least ' if n_edge else ''}{ratio.min():.1f} to {ratio.max():.1f}"),
     display=False)
glue("fig2_edge_sentence", Markdown(
    f"For {n_edge} of the {len(ks)} dashed curves the minimum sits at the top of the grid "
    f"({lr_top:g}), so {'its best learning rate and ratio are' if n_edge == 1 else 'their best learning rates and ratios are'} "
    "only lower bounds." if n_edge else
    "All dashed minima lie inside the grid."), display=False)
# among the solid curves, longer horizons prefer smaller fixed rates (the noise floor)
assert best_solid[0] > best_solid[-1]
glue("fig2_solid_k_first", int(ks[0]), display=False)
glue("fig2_solid_k_last", int(ks[-1]), display=False)
glue("fig2_solid_lr_first", float(best_solid[0]), display=False)
glue("fig2_solid_lr_last", float(best_solid[-1]), display=False)

# %% mystnb={"figure": {"caption": "Figure 2 regenerated: expected excess loss of plain SGD on the 1000-dimensional noisy quadratic after k steps at a fixed learning rate (solid) and after the same k steps followed by 50 steps of exponential decay (dashed), against the learning rate. Dots: each curve's minimum on the grid; a dot at the right edge of the grid marks a lower bound on the best learning rate, not a minimum.", "name": "fig-nqm-2"}}
fig, axes = plotting.figure(1, width=6.0, height=4.0)
ax = axes[0, 0]
colors = plt.cm.viridis(np.linspace(0, 0.9, len(ks)))
for i, k in enumerate(ks):
    ax.plot(lrs, solid[i], color=colors[i], label=f"k = {k}")
    ax.plot(lrs, dashed[i], "--", color=colors[i])
    plotting.mark_minima(ax, lrs, solid[i], color=colors[i])
    plotting.mark_minima(ax, lrs, dashed[i], color=colors[i])
ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="expected excess loss",
       ylim=(max(1.0, 0.5 * dashed.min()), 2 * solid[:, 0].max()))
ax.legend(fontsize="small")
plt.show()

# %% [markdown]
# Every dashed curve's best learning rate is {glue:md}`fig2_ratio_phrase` times larger than the solid curve's with the same $k$:
# the short-horizon objective and the objective that accounts for the later decay
# disagree on the learning rate, as in the paper. {glue:md}`fig2_edge_sentence`
#
# Across horizons, the solid curves show the opposite trend: the best fixed rate falls
# from {glue:text}`fig2_solid_lr_first:.2f` at $k =$ {glue:text}`fig2_solid_k_first:d` to
# {glue:text}`fig2_solid_lr_last:.2f` at $k =$ {glue:text}`fig2_solid_k_last:d`. A fixed rate
# leaves a noise floor that grows with the rate, and the longer the run, the more of the
# loss is that floor rather than the distance still to travel, so longer horizons prefer
# smaller fixed rates. The short-horizon bias is the gap between solid and dashed at the
# same $k$, not the trend across $k$.
#
# ## Figure 3: optimized, greedy and fixed schedules
#
# * **Greedy**: Theorem 2 (learning rate and momentum) at every step. (The
#   paper's text says "using Theorem 3", but Figure 3 shows greedy momenta, so
#   Theorem 2 is what it plots; Theorem 3 is the momentum-free special case.)
# * **Fixed**: one learning rate and one momentum for all 250 steps, from a
#   coarse grid then Adam on $(\log\alpha, \operatorname{logit}\mu)$.
# * **Optimized**: one learning rate and momentum per step, {glue:text}`fig3_adam_steps` Adam
#   steps on the final expected loss (the paper's 500; `smoke` takes fewer), started from the fitted fixed schedule.
#
# Two implementation choices for the optimized schedule are ours:
#
# * *The upper bound.* "An upper bound for the learning rate which prevented the
#   loss component for any dimension from becoming larger than its initial value."
#   We apply it exactly at every step: the proposed step $(\alpha_t, \mu_t)$ is
#   scaled by the largest $s \le 1$ for which every dimension's next $A(\theta_i)$
#   stays at or below $A_0$. The next $A(\theta_i)$ is a convex quadratic in $s$,
#   so $s$ is a closed-form root; shrinking toward $(0, 0)$ (no update) bounds the
#   momentum too, and the fit differentiates through it.
# * *The parameterisation.* Adam on $\log\alpha_t$ and $\operatorname{logit}\mu_t$: the problem
#   is invariant under rescaling $h$ and $\alpha$ together (see above), and only a
#   parameterisation in $\log\alpha$ inherits that invariance; Adam's step is then a
#   relative change. Adam's step in each coordinate is roughly its learning rate in size,
#   so the paper's learning rate 0.003 changes $\alpha$ by only about
#   $e^{0.003} - 1 \approx$ {glue:text}`adam_rel_step:.1%` per step; we use 0.1 for the noisy
#   problem (the variants below include 0.003). For the deterministic problem, whose
#   losses over the three schedules span {glue:text}`det_decades:.0f` orders of magnitude,
#   we use the smaller rate 0.01. Both choices, and the alternatives below, are ours.

# %%
fig3 = nq.run_figure3(profile, device=device, seed=seed, results=results, resume=True)
names = list(fig3["schedules"])
final = dict(zip(names, fig3["final_losses"]))
paper = dict(zip(names, fig3["paper_final_losses"]))
for name in names:
    glue(f"final_{name}", float(final[name]), display=False)
glue("fig3_seconds", float(fig3["seconds"]), display=False)
glue("fig3_adam_steps", int(fig3["optimized_history"].shape[-1] - 1), display=False)
glue("adam_rel_step", float(np.expm1(0.003)), display=False)
_det_losses = fig3["losses"][1]
glue("det_decades", float(np.log10(_det_losses.max() / _det_losses[_det_losses > 0].min())), display=False)
opt_hist = fig3["optimized_history"]
opt_hist = opt_hist[0] if opt_hist.ndim > 1 else opt_hist
last_n = min(100, len(opt_hist) - 1)
glue("opt_last_n", last_n, display=False)
opt_last_drop = float((opt_hist[-1 - last_n] - opt_hist[-1]) / opt_hist[-1 - last_n])
glue("opt_tail_sentence", Markdown(
    f"over its last {last_n} Adam steps the fit lowered the loss by a further {opt_last_drop:.2%} "
    "(relative), so it had not fully stopped" if opt_last_drop > 0 else
    f"over its last {last_n} Adam steps the fit did not lower the loss"), display=False)


def rel_gap(ours, ref):
    """Relative gap (ours - ref) / ref, with -0.0 normalised to 0.0."""
    g = float((ours - ref) / ref)
    return 0.0 if round(100 * g, 1) == 0 else g


for name in names:
    glue(f"absgap_{name}", abs(float((final[name] - paper[name]) / paper[name])), display=False)
# the bound holds for the optimized schedule (noisy and deterministic)
assert (fig3["max_excess_over_initial"][:, 0] <= 1e-9 * fig3["losses"][:, 0, 0]).all()
assert final["optimized"] < final["fixed"] < final["greedy"]

rows = ["| schedule | our final loss | paper | relative gap |", "|---|---|---|---|"]
for name in names:
    rows.append(f"| {name} | {final[name]:.2f} | {paper[name]:.2f} | {rel_gap(final[name], paper[name]):+.1%} |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# The greedy value matches by construction (it calibrated $c_0$). The fixed
# schedule's {glue:text}`final_fixed:.2f` is a prediction and lands within
# {glue:text}`absgap_fixed:.2%` of the paper's {glue:text}`paper_fixed:.2f`. The optimized schedule ends at
# {glue:text}`final_optimized:.2f`, {glue:text}`absgap_optimized:.1%` away from the paper's
# {glue:text}`paper_optimized:.2f`; {glue:md}`opt_tail_sentence` (the `paper` profile's
# 2000-step variant below tests how much more a longer fit gains).
# The whole Figure 3 computation (both cases, all three schedules) took
# {glue:text}`fig3_seconds:.1f` s when it was computed.

# %% mystnb={"figure": {"caption": "Figure 3(a) regenerated, noisy quadratic: expected excess loss, learning rate and momentum of the optimized (red), greedy (blue) and fixed (green) schedules, and the loss summed over the 50 highest- and 50 lowest-curvature directions.", "name": "fig-nqm-3a"}}
fig, axes = plotting.figure(5, width=3.1, height=2.9)
series = {n: dict(losses=fig3["losses"][0, i], alphas=fig3["alphas"][0, i], mus=fig3["mus"][0, i])
          for i, n in enumerate(names)}
plotting.schedule_panels(axes[0, :3], series)
steps = np.arange(fig3["losses"].shape[-1])
for i, n in enumerate(names):
    axes[0, 3].plot(steps, fig3["loss_high50"][0, i], color=plotting.SCHEDULE_COLORS[n])
    axes[0, 4].plot(steps, fig3["loss_low50"][0, i], color=plotting.SCHEDULE_COLORS[n])
axes[0, 3].set(xlabel="step", ylabel="loss, 50 highest curvatures", yscale="log")
axes[0, 4].set(xlabel="step", ylabel="loss, 50 lowest curvatures", yscale="log")
plt.show()

# %%
hi_opt, hi_greedy = fig3["loss_high50"][0, 0], fig3["loss_high50"][0, 1]
lo_opt, lo_greedy = fig3["loss_low50"][0, 0], fig3["loss_low50"][0, 1]
glue("high_opt_50", float(hi_opt[50] / hi_opt[0]), display=False)
glue("high_greedy_50", float(hi_greedy[50] / hi_greedy[0]), display=False)
glue("low_opt_T", float(lo_opt[-1]), display=False)
glue("low_greedy_T", float(lo_greedy[-1]), display=False)
glue("alpha_greedy_T", float(fig3["alphas"][0, 1, -1]), display=False)
glue("alpha_opt_max", float(fig3["alphas"][0, 0].max()), display=False)
assert lo_opt[-1] < lo_greedy[-1]

# %% [markdown]
# The paper's reading of Figure 3(a) holds in our run. After 50 steps the greedy
# schedule has cut the loss of the 50 highest-curvature directions to
# {glue:text}`high_greedy_50:.2e` of its initial value, the optimized one only to
# {glue:text}`high_opt_50:.2e`: it keeps a large learning rate (up to
# {glue:text}`alpha_opt_max:.2f`) and makes progress on the low-curvature directions,
# whose summed loss ends at {glue:text}`low_opt_T:.2f` against {glue:text}`low_greedy_T:.2f`
# for greedy, whose learning rate has shrunk to {glue:text}`alpha_greedy_T:.3f`.
#
# ### Figure 3(b): the deterministic case
#
# The same Hessian with $\sigma_i^2 = 0$. Greedy learning rate and momentum are
# then conjugate gradient, the best any such method can do, so the optimized
# schedule can at most match it.

# %% mystnb={"figure": {"caption": "Figure 3(b) regenerated, deterministic quadratic: expected loss, learning rate and momentum of the optimized (red), greedy (blue) and fixed (green) schedules.", "name": "fig-nqm-3b"}}
fig, axes = plotting.figure(3, width=3.6, height=3.0)
series_det = {n: dict(losses=fig3["losses"][1, i], alphas=fig3["alphas"][1, i], mus=fig3["mus"][1, i])
              for i, n in enumerate(names)}
plotting.schedule_panels(axes[0], series_det)
plt.show()

# %%
det = dict(zip(names, fig3["final_losses_deterministic"]))
for name in names:
    glue(f"det_{name}", float(det[name]), display=False)
assert det["greedy"] <= det["optimized"] * (1 + 1e-6) and det["greedy"] <= det["fixed"]
assert det["optimized"] < det["fixed"]
glue("det_gap_factor", float(det["optimized"] / det["greedy"]), display=False)
# a fit started at the greedy (CG) schedule: does Adam find anything better?
det_problem = problem.deterministic()
det_from_greedy = nq.fit_schedule(*det_problem.arrays, torch.as_tensor(fig3["alphas"][1, 1]),
                                  torch.as_tensor(fig3["mus"][1, 1]),
                                  steps=pick(profile, {"smoke": 20, "quick": 100, "paper": 500}),
                                  lr=0.01, parameterization="log", bound=True)
glue("det_from_greedy", float(det_from_greedy.history.min()), display=False)
glue("det_from_greedy_steps", int(det_from_greedy.history.shape[-1]) - 1, display=False)
assert float(det_from_greedy.history.min()) >= det["greedy"] * (1 - 1e-6)

# %% [markdown]
# Deterministic final losses: greedy (CG) {glue:text}`det_greedy:.2e`, optimized
# {glue:text}`det_optimized:.2e`, fixed {glue:text}`det_fixed:.2e`. Greedy is the best of
# the three, as the theory says, and the fitted schedule improves on the fixed one it
# started from, but it stays a factor {glue:text}`det_gap_factor:.0f` above CG: in this badly
# conditioned problem Adam does not find CG's schedule within the paper's 500 steps. We
# therefore do **not** reproduce the paper's "our optimized schedule matched the greedy
# one" as two overlapping fitted curves. What we can show is the other half of the claim:
# started at the greedy (CG) schedule, {glue:text}`det_from_greedy_steps:d` Adam steps find no
# schedule with a lower final loss than {glue:text}`det_from_greedy:.2e` (CG's), consistent
# with CG being optimal; where the fit from the fixed start would end is not shown. The greedy learning rate and momentum rise over the first steps
# and then stay almost flat, as in the paper.
#
# ## How much do the open choices matter?
#
# ### Spectrum and condition number
#
# Besides the Chebyshev extreme points used so far ("extreme"), we try two other spectra on
# $[a, b] = [1/\kappa, 1]$: the Chebyshev zeros ("zeros"),
# $h_j = \tfrac{b+a}{2} + \tfrac{b-a}{2}\cos\tfrac{(2j+1)\pi}{2N}$, and a geometric
# (log-uniform) spectrum ("geometric"), $h_j = b\,(a/b)^{j/(N-1)}$, $j = 0, \dots, N-1$.
# For each spectrum we re-calibrate $c_0$ so that greedy ends at {glue:text}`paper_greedy:.2f`,
# then fit the best fixed schedule: the second reported number is a prediction of each setup.

# %%
settings = pick(profile, {
    "smoke": [("extreme", 300.0), ("extreme", 2000.0)],
    "quick": [("extreme", 300.0), ("extreme", 2000.0), ("extreme", 1e5), ("zeros", 2000.0),
              ("geometric", 2000.0)],
    "paper": [("extreme", 300.0), ("extreme", 1000.0), ("extreme", 2000.0), ("extreme", 1e4),
              ("extreme", 1e5), ("zeros", 2000.0), ("geometric", 2000.0)]})
sens = []
for spectrum, kappa in settings:
    try:
        c0 = nq.calibrate_c0(kappa=kappa, spectrum=spectrum, iters=30)
    except ValueError:
        sens.append((spectrum, kappa, np.nan, np.nan))
        continue
    p = nq.make_problem(kappa=kappa, c0=c0, spectrum=spectrum)
    fixed_fit = nq.fit_fixed(*p.arrays, p.horizon, steps=nq.FIGURE3_FIT["fixed_steps"],
                             lr=nq.FIGURE3_FIT["fixed_lr"])
    sens.append((spectrum, kappa, c0, float(fixed_fit.losses[-1])))
rows = [f"| spectrum | kappa | calibrated c0 | fixed final loss (paper {nq.PAPER_FINAL_LOSSES['fixed']:.2f}) |",
        "|---|---|---|---|"]
for spectrum, kappa, c0, fixed_final in sens:
    rows.append(f"| {spectrum} | {kappa:g} | {c0:.2f} | {fixed_final:.2f} |")
display(Markdown("\n".join(rows)))
extreme = [s for s in sens if s[0] == "extreme" and np.isfinite(s[3])]
glue("sens_fixed_min", min(s[3] for s in extreme), display=False)
glue("sens_fixed_max", max(s[3] for s in extreme), display=False)
geometric = [s for s in sens if s[0] == "geometric" and np.isfinite(s[3])]
if geometric:
    g_fixed = geometric[0][3]
    ref_fixed = nq.PAPER_FINAL_LOSSES["fixed"]
    g_dev = g_fixed / ref_fixed - 1
    ext_dev = max(abs(s[3] / ref_fixed - 1) for s in extreme)
    geometric_md = (f"The geometric spectrum, calibrated the same way, predicts a fixed-schedule loss of "
                    f"{g_fixed:.2f} (condition number {geometric[0][1]:g}), {abs(g_dev):.0%} "
                    f"{'below' if g_dev < 0 else 'above'} the paper's {ref_fixed:.2f}, against at most "
                    f"{ext_dev:.1%} for the Chebyshev setups"
                    + (": it is far from the reported value, which the Chebyshev spectrum the paper names "
                       "reproduces and the geometric one does not." if abs(g_dev) > 5 * ext_dev else "."))
else:
    geometric_md = "(The geometric spectrum is tried only in the `quick` and `paper` profiles.)"
glue("sens_geometric", Markdown(geometric_md), display=False)

# %% [markdown]
# With the Chebyshev spectrum the calibrated setups predict a fixed-schedule loss
# between {glue:text}`sens_fixed_min:.2f` and {glue:text}`sens_fixed_max:.2f` over the
# condition numbers tried, against the paper's {glue:text}`paper_fixed:.2f`.
# {glue:md}`sens_geometric`
#
# ### The optimized schedule's fit
#
# The optimized loss depends on how the fit is run. Variants on the noisy problem, each
# compared with the run above (log parameterisation, Adam lr 0.1, bound, started from the
# fixed schedule, {glue:text}`fig3_adam_steps` steps); "bound held" checks the per-dimension upper bound on the
# resulting schedule:

# %%
variants = pick(profile, {
    "smoke": [],
    "quick": [("log", 0.003, True, "fixed", 500), ("raw", 0.003, False, "fixed", 300),
              ("log", 0.1, True, "greedy", 300)],
    "paper": [("log", 0.003, True, "fixed", 500), ("log", 0.03, True, "fixed", 500),
              ("raw", 0.003, True, "fixed", 500), ("raw", 0.003, False, "fixed", 500),
              ("log", 0.1, True, "greedy", 500), ("log", 0.1, True, "fixed", 2000)]})
fixed_start = (torch.as_tensor(fig3["alphas"][0, 2]), torch.as_tensor(fig3["mus"][0, 2]))
greedy_start = (torch.as_tensor(fig3["alphas"][0, 1]), torch.as_tensor(fig3["mus"][0, 1]))
rows = ["| parameterisation | Adam lr | bound | start | Adam steps | final loss | bound held |",
        "|---|---|---|---|---|---|---|",
        f"| log (the run above) | 0.1 | yes | fixed | {int(fig3['optimized_history'].shape[-1]) - 1} | "
        f"{final['optimized']:.2f} | yes |"]
variant_losses = {}
for par, lr, bound, init, steps_v in variants:
    start = fixed_start if init == "fixed" else greedy_start
    fit_v = nq.fit_schedule(*problem.arrays, *start, steps=steps_v, lr=lr, parameterization=par,
                            bound=bound)
    per_dim = nq.dynamics(*problem.arrays, fit_v.alphas, fit_v.mus, per_dim=True)
    held = bool((per_dim - per_dim[0] <= 1e-9 * per_dim[0]).all())
    variant_losses[(par, lr, bound, init, steps_v)] = float(fit_v.losses[-1])
    rows.append(f"| {par} | {lr:g} | {'yes' if bound else 'no'} | {init} | {steps_v} | "
                f"{float(fit_v.losses[-1]):.2f} | {'yes' if held else 'no'} |")
display(Markdown("\n".join(rows)))
all_opt = [final["optimized"]] + list(variant_losses.values())
glue("opt_var_min", float(min(all_opt)), display=False)
glue("opt_var_max", float(max(all_opt)), display=False)
glue("opt_var_ratio", float(final["greedy"] / max(all_opt)), display=False)

# %% [markdown]
# Over these variants the optimized schedule's final loss ranges from
# {glue:text}`opt_var_min:.2f` to {glue:text}`opt_var_max:.2f` (the `smoke` profile runs none,
# the `paper` profile adds more, including a 2000-step fit). The loss of the optimized
# schedule is therefore the least pinned-down of the three numbers: it depends on the
# optimizer's settings and on how the bound is enforced (without the bound, the raw fit
# breaks it). Even the worst variant ends {glue:text}`opt_var_ratio:.1f` times below greedy,
# which is the paper's point.
#
# ## Reproducibility
#
# The Figure 3 arrays are saved by `python -m shortbias_lib figure3 --profile quick`
# (function `shortbias_lib.noisy_quadratic.run_figure3`) to `figure3_<profile>_seed<seed>.npz`
# in the results folder, with their provenance; this page read or computed that file.

# %%
glue("chapter_seconds", time.perf_counter() - chapter_start, display=False)

# %% [markdown]
# This chapter ran in {glue:text}`chapter_seconds:.0f` s.

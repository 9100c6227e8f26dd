# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
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

context = setup(profile, device, seed, data_root, results, threads=1)

# %% tags=["remove-cell"]
# %matplotlib inline
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from myst_nb import glue

from shortbias_lib import noisy_quadratic as nq
from shortbias_lib import nqm_fit, plotting
from shortbias_lib.nqm_dynamics import dynamics, greedy_schedule
from shortbias_lib.nqm_fixed import fixed_final_loss
from shortbias_lib.nqm_gradient import fit_schedule
from shortbias_lib.nqm_montecarlo import monte_carlo
from shortbias_lib.nqm_problem import constant_schedule, decayed_schedule, make_problem
from shortbias_lib.profiles import pick
from shortbias_lib.report import markdown_table

chapter_start = time.perf_counter()

# %% [markdown]
# ## The problem of Section 2.3, and what we had to choose
#
# The paper specifies $N = 1000$ dimensions, the curvature distribution "from Li
# (2005), on which CG achieves its worst-case convergence rate",
# $\sigma_i^2 = 1/h_i$ and the horizon $T = 250$. Li (2005) shows that CG's
# worst case on $[a, b]$ is attained on the translated Chebyshev extreme points
#
# $$ h_j = \tfrac{b+a}{2} + \tfrac{b-a}{2}\cos\tfrac{j\pi}{N-1}, \qquad j = 0, \dots, N-1, $$
#
# together with specific weights of the initial error on the eigenvectors: the spectrum
# alone does not make it the worst case. We take the spectrum, with $b = 1$ and
# $a = 1/\kappa$, and choose the initial state ourselves (below). Three things
# remain open, and each is fixed here on a stated principle:
#
# * **Scale.** Only $A_0 = \mathbb{E}[\theta_0]^2 + \mathbb{V}[\theta_0]$ per dimension
#   enters the expected loss, and $(h, A_0, \alpha) \to (ch, A_0/c, \alpha/c)$
#   leaves every loss unchanged (tested in `tests/test_noisy_quadratic.py`), so $b = 1$ loses nothing.
# * **Initial state.** The simplest isotropic start, $\mathbb{E}[\theta_0] = c_0$ in every
#   dimension and $\mathbb{V}[\theta_0] = 0$, with $c_0$ *calibrated* so that the
#   greedy schedule (Theorem 2) ends at the paper's {glue:text}`paper_greedy:.2f`. The other two
#   numbers (fixed {glue:text}`paper_fixed:.2f`, optimized {glue:text}`paper_optimized:.2f`) are then predictions, not fits.
# * **Condition number.** $\kappa$ is not given. {glue:md}`kappa_choice_md`
#
# The reported losses exclude the constant $\frac12\sum_i h_i\sigma_i^2 =$ {glue:text}`noise_floor:.0f`
# of Eq. (6), which is larger than all three reported values; every loss in this
# chapter is the *excess* loss $\frac12\sum_i h_i A(\theta_i)$.

# %%
problem = make_problem()
glue("kappa", problem.info["kappa"], display=False)
for _name, _value in nq.PAPER_FINAL_LOSSES.items():
    glue(f"paper_{_name}", float(_value), display=False)
glue("c0", problem.info["c0"], display=False)
glue("noise_floor", float((0.5 * problem.h * problem.sigma2).sum()), display=False)
glue("initial_loss", float(0.5 * (problem.h * (problem.mean0 ** 2 + problem.var0)).sum()), display=False)
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
# The paper gives no numbers for Figure 1, so its settings here are our choices: a
# two-dimensional noisy quadratic with $h = (1, 0.02)$, $\sigma_i^2 = 1/h_i$ and
# $\theta_0 = (1, 4)$, and a conservative fixed learning rate (blue) against an
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
conservative = constant_schedule(0.1, T2)
aggressive = decayed_schedule(torch.tensor(1.0, dtype=torch.float64), k_aggr, decay_steps, 0.01)
loss_c = dynamics(h2, s2_2, m0_2, v0_2, *conservative)
loss_a = dynamics(h2, s2_2, m0_2, v0_2, *aggressive)
mc_c = monte_carlo(h2, s2_2, m0_2, v0_2, *conservative, n_samples=2000, seed=seed, n_paths=1)
mc_a = monte_carlo(h2, s2_2, m0_2, v0_2, *aggressive, n_samples=2000, seed=seed + 1, n_paths=1)
# the figure's claim, checked: conservative is ahead when the decay starts, behind at the end
assert loss_c[k_aggr] < loss_a[k_aggr] and loss_a[-1] < loss_c[-1]
glue("fig1_k", k_aggr, display=False)
glue("fig1_c_k", float(loss_c[k_aggr]), display=False)
glue("fig1_a_k", float(loss_a[k_aggr]), display=False)
glue("fig1_c_T", float(loss_c[-1]), display=False)
glue("fig1_a_T", float(loss_a[-1]), display=False)

# %% mystnb={"figure": {"caption": "Figure 1 regenerated. Left: one sampled trajectory of SGD with a conservative fixed learning rate 0.1 (blue) and with an aggressive learning rate 1.0 (red) followed by 50 steps of exponential decay (yellow), on the contours of the loss; the low-curvature direction is horizontal, and the axes are widened to hold both sampled paths. Right: exact expected excess losses (lines) and Monte Carlo means of 2000 runs (dots).", "name": "fig-nqm-1"}}
fig = plotting.paper_figure1(h2, mc_c, mc_a, loss_c, loss_a, k_aggr)
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
# exponential decay to $\alpha/100$ (dashed). The paper gives neither the decay rate nor
# the horizons $k$ nor the grid of rates: the 100-fold decay, the $k$ and the grid are our
# choices. Dots mark each curve's best learning rate on the grid.
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
        a_s, m_s = constant_schedule(lrs, k)
        solid.append(dynamics(*problem.arrays, a_s, m_s)[..., -1])
        a_d, m_d = decayed_schedule(lrs, k, 50, 0.01)
        dashed.append(dynamics(*problem.arrays, a_d, m_d)[..., -1])
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
# * **Fixed**: the best single $(\alpha, \mu)$ for all 250 steps. The final loss of a fixed
#   schedule is exact and cheap (a $2\times 2$ matrix power per dimension), so the search is
#   global: a grid over the effective learning rate $\alpha/(1-\mu)$ from $10^{-3}$ to about
#   3000 and momenta from 0 to 0.9999, then zooming grids around the best point.
# * **Optimized**: one learning rate and momentum per step, minimising the final expected
#   loss. The paper used 500 Adam steps; we use a fit that converges and say where it
#   stopped: L-BFGS on the *logarithm* of the final loss over $(\log\alpha_t, \operatorname{logit}\mu_t)$,
#   stopped once the final loss improves by less than {glue:text}`fit_tol:.0e` (relative) over
#   {glue:text}`fit_window:d` iterations. The noisy fit starts from the best fixed schedule; the
#   deterministic one from both greedy and the best fixed schedule, and the better end wins.
#   In $\log\alpha_t$ a learning rate that collapses towards 0 cannot come back (its gradient
#   vanishes with it), so once the fit has stopped, steps whose learning rate lies
#   $e^{3} \approx 20$ times below the median of their neighbours are reset to it and the fit is rerun,
#   kept only if it ends lower; {glue:md}`opt_collapsed`. The fit is not convex, so "converged"
#   means a local optimum: runs that differ only in rounding can end in different valleys of
#   the schedule's last steps (`bench/README.md` records how far apart).
#
# Two implementation choices for the optimized schedule are ours:
#
# * *The upper bound.* "An upper bound for the learning rate which prevented the
#   loss component for any dimension from becoming larger than its initial value."
#   We apply it exactly at every step: the proposed step $(\alpha_t, \mu_t)$ is
#   scaled by the largest $s \le 1$ for which every dimension's next $A(\theta_i)$
#   stays at or below $A_0$. The next $A(\theta_i)$ is a convex quadratic in $s$,
#   so $s$ is a closed-form root $r_i$ per dimension and $s = \min(1, r_1, \dots, r_N)$;
#   shrinking toward $(0, 0)$ (no update) bounds the momentum too. That minimum has a kink
#   wherever the binding dimension changes, and here the kinks are dense (many curvatures
#   near the top of the spectrum bind alike): L-BFGS through the exact minimum crawls along
#   them until its stopping rule fires on the crawl, well above the optimum. So the
#   fit uses the smooth soft minimum $s_p = (1 + \sum_i r_i^{-p})^{-1/p}$, never larger than
#   $s$ (so every schedule it visits respects the bound) and at least $s\,(N+1)^{-1/p}$,
#   in stages $p =$ {glue:md}`fit_sharpness`, each started where the previous one ended; the
#   convergence reported is the last stage's stopping rule. Beside the bound-respecting
#   optimum we report the unconstrained one.
# * *The objective and its coordinates.* The problem is invariant under rescaling $h$ and
#   $\alpha$ together (see above), which only $\log\alpha$ inherits; and the final loss spans
#   many orders of magnitude over the schedules a fit visits (the deterministic one falls
#   below $10^{-8}$), so we minimise its logarithm, a relative measure. Adam on the loss
#   itself keeps the memory of the large early gradients while the loss falls a
#   hundredfold, so its steps shrink and it stops short (the comparison with Adam is below).

# %%
fig3 = nq.run_figure3(profile, device=device, seed=seed, results=results, resume=True).arrays
names = list(fig3["schedules"])
final = dict(zip(names, fig3["final_losses"]))
paper = dict(zip(names, fig3["paper_final_losses"]))
for name in names:
    glue(f"final_{name}", float(final[name]), display=False)
glue("fig3_seconds", float(fig3["seconds"]), display=False)
glue("fit_tol", float(fig3["fit_tol"]), display=False)
glue("fit_window", int(fig3["fit_window"]), display=False)
glue("fixed_alpha", float(fig3["fixed_alpha"][0]), display=False)
glue("fixed_mu", float(fig3["fixed_mu"][0]), display=False)
opt_iters = int(fig3["start_iterations"][0, 1])
opt_converged = bool(fig3["start_converged"][0, 1])
glue("opt_stop_sentence", Markdown(
    f"the stopping rule ended the fit's last stage, after {opt_iters} L-BFGS iterations in all"
    if opt_converged else
    f"the fit's last stage ended after {opt_iters} L-BFGS iterations in all without the stopping "
    "rule firing (this profile's cap, or no step lowered the loss), so it is not converged"), display=False)
glue("fit_sharpness", Markdown(", ".join(f"{p:g}" for p in nqm_fit.SHARPNESS)), display=False)
# collapsed steps left in the saved noisy optimized schedule (the same rule as the restarts)
n_collapsed = int(nqm_fit._collapsed(np.log(fig3["alphas"][0, :1]))[0].sum())
glue("opt_collapsed", Markdown(
    "the noisy optimized schedule below has no collapsed step left" if n_collapsed == 0 else
    f"{n_collapsed} step{'s' if n_collapsed > 1 else ''} of the noisy optimized schedule below "
    "still count as collapsed (no restart from there ended lower)"), display=False)
glue("free_final", float(fig3["unconstrained_final"]), display=False)
glue("free_iters", int(fig3["unconstrained_iterations"]), display=False)
glue("free_stop", Markdown("stopped by the same rule: converged" if bool(fig3["unconstrained_converged"])
                           else "the stopping rule did not fire, so it has not converged"), display=False)
# the unconstrained fit starts at the bounded optimum, so it can only be lower
assert float(fig3["unconstrained_final"]) <= final["optimized"] * (1 + 1e-12)
free_per_dim = dynamics(problem.h, problem.sigma2, problem.mean0, problem.var0,
                        torch.as_tensor(fig3["unconstrained_alphas"]),
                        torch.as_tensor(fig3["unconstrained_mus"]), per_dim=True, check=False)
free_breaks = bool((free_per_dim - free_per_dim[:1] > 1e-9 * free_per_dim[:1]).any())
glue("free_bound_phrase", Markdown("breaks the bound in some dimensions" if free_breaks
                                   else "happens to respect the bound"), display=False)


def rel_gap(ours, ref):
    """Relative gap (ours - ref) / ref, with -0.0 normalised to 0.0."""
    g = float((ours - ref) / ref)
    return 0.0 if round(100 * g, 1) == 0 else g


for name in names:
    glue(f"absgap_{name}", abs(float((final[name] - paper[name]) / paper[name])), display=False)
# the bound holds for the optimized schedule (noisy and deterministic)
assert (fig3["max_excess_over_initial"][:, 0] <= 1e-9 * fig3["losses"][:, 0, 0]).all()
assert final["optimized"] < final["fixed"] < final["greedy"]

# how firm the fixed and optimized numbers are: c0 recalibrated per kappa (unrounded), see run_figure3
kap, kap_c0, kap_fixed, kap_opt = (np.asarray(fig3[k], dtype=np.float64) for k in
                                   ("kappas", "kappa_c0", "kappa_fixed", "kappa_optimized"))
i_default = int(np.flatnonzero(kap == problem.info["kappa"])[0])
ok_fixed = np.isfinite(kap_fixed)
closest = float(kap[ok_fixed][np.argmin(np.abs(kap_fixed[ok_fixed] - paper["fixed"]))])
kappa_list = ", ".join(f"{k:g}" for k in kap[ok_fixed])
glue("kappa_choice_md", Markdown(
    f"We use κ = {problem.info['kappa']:g}. "
    + (f"Among the round values tried below ({kappa_list}) it is the one whose calibrated setup puts the best "
       f"fixed schedule closest to the paper's {paper['fixed']:.2f}, so that number's match at this κ is partly "
       "chosen; "
       if closest == problem.info["kappa"] else
       f"It is not the value among those tried below ({kappa_list}) whose calibrated setup comes closest to the "
       f"paper's fixed loss {paper['fixed']:.2f} (that is κ = {closest:g}); ")
    + "the section on open choices below recalibrates c0 for each κ and shows how far each prediction moves."),
    display=False)
fixed_spread = float(np.abs(kap_fixed[ok_fixed] / paper["fixed"] - 1).max())
glue("fixed_kappa_spread", fixed_spread, display=False)
glue("kappa_min", float(kap[ok_fixed].min()), display=False)
glue("kappa_max", float(kap[ok_fixed].max()), display=False)
ok_opt = np.isfinite(kap_opt)
glue("opt_kappa_min", float(kap_opt[ok_opt].min()), display=False)
glue("opt_kappa_max", float(kap_opt[ok_opt].max()), display=False)
glue("opt_kappas", Markdown(", ".join(f"{k:g}" for k in kap[ok_opt])), display=False)
glue("opt_kappa_spread", float(np.abs(kap_opt[ok_opt] / paper["optimized"] - 1).max()), display=False)
# c0 unrounded at the default kappa: the same fit, and the schedule fitted above replayed there
exact = make_problem(c0=float(kap_c0[i_default]))
opt_exact = float(kap_opt[i_default])
opt_cross = float(dynamics(*exact.arrays, torch.as_tensor(fig3["alphas"][0, 0]), torch.as_tensor(fig3["mus"][0, 0]),
                           bound=True)[0][-1])
glue("c0_exact", float(kap_c0[i_default]), display=False)
glue("c0_change", abs(float(kap_c0[i_default]) / problem.info["c0"] - 1), display=False)
glue("opt_exact", opt_exact, display=False)
glue("opt_cross", opt_cross, display=False)
glue("opt_cross_md", Markdown(
    "so the difference is where the fit stops (it ends in another valley of a non-convex fit), not the problem"
    if opt_cross < opt_exact * (1 - 1e-3) else
    "lower than the fit reaches there, so the rounding, not the fit, moves the number"
    if opt_exact < opt_cross * (1 - 1e-3) else "the same: the rounding hardly matters"), display=False)

kinds = {"greedy": "calibrated ($c_0$ chosen to match)", "fixed": "prediction", "optimized": "prediction"}
display(Markdown(markdown_table(
    ["schedule", "our final loss", "paper", "relative gap", "kind"],
    [(name, f"{final[name]:.2f}", f"{paper[name]:.2f}", f"{rel_gap(final[name], paper[name]):+.1%}", kinds[name])
     for name in names])))

# %% [markdown]
# The greedy value matches by construction: it calibrated $c_0$, so it is not evidence of
# agreement. The other two are predictions. The best fixed schedule ($\alpha =$
# {glue:text}`fixed_alpha:.4f`, $\mu =$ {glue:text}`fixed_mu:.4f`) ends at
# {glue:text}`final_fixed:.2f`, within {glue:text}`absgap_fixed:.2%` of the paper's
# {glue:text}`paper_fixed:.2f`. The optimized schedule ends at {glue:text}`final_optimized:.2f`,
# {glue:text}`absgap_optimized:.1%` from the paper's {glue:text}`paper_optimized:.2f`;
# {glue:md}`opt_stop_sentence`. Without the bound, the same fit (started at the bounded
# optimum) reaches {glue:text}`free_final:.2f` after {glue:text}`free_iters:d` further
# iterations ({glue:md}`free_stop`); that schedule {glue:md}`free_bound_phrase`.
# The whole Figure 3 computation (both cases, all three schedules and the unconstrained
# fit) took {glue:text}`fig3_seconds:.1f` s when it was computed.
#
# **How firm are the two predictions?** The fixed number's closeness, within
# {glue:text}`absgap_fixed:.2%`, belongs to the chosen $\kappa$: with $c_0$ recalibrated for
# each $\kappa$ from {glue:text}`kappa_min:g` to {glue:text}`kappa_max:g` it stays within
# {glue:text}`fixed_kappa_spread:.1%` of the paper's value, and that is the robust statement.
# The optimized number is fragile. With $c_0$ calibrated exactly ({glue:text}`c0_exact:.4f`)
# instead of rounded to {glue:text}`c0:.2f`, a relative change of {glue:text}`c0_change:.0e`,
# the same fit ends at {glue:text}`opt_exact:.3f` instead of {glue:text}`final_optimized:.3f`;
# the schedule fitted above, replayed on that problem under the bound, ends at
# {glue:text}`opt_cross:.3f`: {glue:md}`opt_cross_md`. Over $\kappa =$
# {glue:md}`opt_kappas` (each with its calibrated $c_0$) the fit ends between
# {glue:text}`opt_kappa_min:.3f` and {glue:text}`opt_kappa_max:.3f`, up to
# {glue:text}`opt_kappa_spread:.0%` from the paper's {glue:text}`paper_optimized:.2f`.

# %% mystnb={"figure": {"caption": "Figure 3(a) regenerated, noisy quadratic: expected excess loss, learning rate and momentum of the optimized (red), greedy (blue) and fixed (green) schedules, and the loss summed over the 50 highest- and 50 lowest-curvature directions.", "name": "fig-nqm-3a"}}
fig, axes = plotting.figure(3, nrows=2, width=2.2, height=2.4)   # at most 3 panels a row
series = {n: dict(losses=fig3["losses"][0, i], alphas=fig3["alphas"][0, i], mus=fig3["mus"][0, i])
          for i, n in enumerate(names)}
plotting.schedule_panels(axes[0, :3], series)
steps = np.arange(fig3["losses"].shape[-1])
for i, n in enumerate(names):
    axes[1, 0].plot(steps, fig3["loss_high50"][0, i], color=plotting.SCHEDULE_COLORS[n])
    axes[1, 1].plot(steps, fig3["loss_low50"][0, i], color=plotting.SCHEDULE_COLORS[n])
axes[1, 0].set(xlabel="step", ylabel="loss, 50 highest curvatures", yscale="log")
axes[1, 1].set(xlabel="step", ylabel="loss, 50 lowest curvatures", yscale="log")
axes[1, 2].axis("off")
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
assert lo_opt[-1] < lo_greedy[-1] and hi_opt[50] / hi_opt[0] > hi_greedy[50] / hi_greedy[0]

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
# The same Hessian with $\sigma_i^2 = 0$. Greedy learning rate and momentum are then
# conjugate gradient (the tests compare them with an independent CG on random
# problems), which is optimal among all methods whose iterates lie in the Krylov
# space, so the optimized schedule can at best match it.

# %% mystnb={"figure": {"caption": "Figure 3(b) regenerated, deterministic quadratic: expected loss, learning rate and momentum of the optimized (red), greedy (blue) and fixed (green) schedules.", "name": "fig-nqm-3b"}}
fig, axes = plotting.figure(3, width=2.2, height=2.4)
series_det = {n: dict(losses=fig3["losses"][1, i], alphas=fig3["alphas"][1, i], mus=fig3["mus"][1, i])
              for i, n in enumerate(names)}
plotting.schedule_panels(axes[0], series_det)
plt.show()

# %%
det = dict(zip(names, fig3["final_losses_deterministic"]))
for name in names:
    glue(f"det_{name}", float(det[name]), display=False)
starts = list(fig3["starts"])
det_ends = dict(zip(starts, fig3["start_finals"][1]))
det_winner = starts[int(fig3["winner"][1])]
# greedy (CG) is optimal: the fit ends within 1% of it and never below it
assert det["greedy"] * (1 - 1e-9) <= det["optimized"] <= 1.01 * det["greedy"]
assert det["greedy"] <= det["fixed"]
glue("det_ratio", float(det["optimized"] / det["greedy"]), display=False)
glue("det_fixed_ratio", float(det["fixed"] / det["greedy"]), display=False)
glue("det_from_fixed", float(det_ends["fixed"]), display=False)
glue("det_from_fixed_ratio", float(det_ends["fixed"] / det["greedy"]), display=False)
glue("det_from_fixed_iters", int(fig3["start_iterations"][1, 1]), display=False)
glue("det_fixed_cap", Markdown(
    f"{nq.FIGURE3_FIT['det_fixed_iter']} iterations per stage, {int(fig3['start_iterations'][1, 1])} in all"),
    display=False)
_n_greedy = int(fig3["start_iterations"][1, 0])
glue("det_from_greedy", Markdown(
    f"its stopping rule ends it after {_n_greedy} iterations" if bool(fig3["start_converged"][1, 0]) else
    f"it ends after {_n_greedy} iterations, when no step along its direction lowers the final loss "
    "any more (greedy is optimal to rounding)"), display=False)
glue("det_winner", Markdown(f"**{det_winner}**"), display=False)

# %% [markdown]
# Deterministic final losses: greedy (CG) {glue:text}`det_greedy:.3e`, optimized
# {glue:text}`det_optimized:.3e` ({glue:text}`det_ratio:.4f` times greedy's), fixed
# {glue:text}`det_fixed:.2e` ({glue:text}`det_fixed_ratio:.0f` times greedy's). The winning
# start of the optimized fit was {glue:md}`det_winner`: from greedy, L-BFGS finds no
# direction that lowers the final loss: {glue:md}`det_from_greedy`; from the best fixed schedule, it reaches
# {glue:text}`det_from_fixed:.2e` ({glue:text}`det_from_fixed_ratio:.2f` times greedy's) within
# its cap ({glue:md}`det_fixed_cap`), approaching CG from above. So the
# optimized schedule matches greedy here, as the paper says: greedy is optimal in the
# deterministic case, and the short-horizon bias of Figure 3(a) comes from the noise.
#
# ## How much do the open choices matter?
#
# ### Spectrum and condition number
#
# Besides the Chebyshev extreme points used so far ("extreme"), we try two other spectra on
# $[a, b] = [1/\kappa, 1]$: the Chebyshev zeros ("zeros"),
# $h_j = \tfrac{b+a}{2} + \tfrac{b-a}{2}\cos\tfrac{(2j+1)\pi}{2N}$, and a geometric
# (log-uniform) spectrum ("geometric"), $h_j = b\,(a/b)^{j/(N-1)}$, $j = 0, \dots, N-1$.
# For each spectrum and condition number we re-calibrate $c_0$ so that greedy ends at
# {glue:text}`paper_greedy:.2f`, then find the best fixed schedule: the second reported
# number is a prediction of each setup.

# %%
settings = pick(profile, {
    "smoke": [("extreme", 300.0), ("extreme", 2000.0)],
    "quick": [("extreme", 300.0), ("extreme", 1000.0), ("extreme", 2000.0), ("extreme", 1e4),
              ("extreme", 1e5), ("zeros", 2000.0), ("geometric", 2000.0)],
    "paper": [("extreme", 100.0), ("extreme", 300.0), ("extreme", 1000.0), ("extreme", 2000.0),
              ("extreme", 1e4), ("extreme", 1e5), ("zeros", 2000.0), ("geometric", 2000.0)]})
c0s, fixed_finals = nq.calibrated_fixed(settings)
sens = [(spectrum, kappa, float(c0), float(f)) for (spectrum, kappa), c0, f in zip(settings, c0s, fixed_finals)]
display(Markdown(markdown_table(
    ["spectrum", "kappa", "calibrated c0", f"best fixed final loss (paper {nq.PAPER_FINAL_LOSSES['fixed']:.2f})"],
    [(spectrum, f"{kappa:g}", f"{c0:.2f}", f"{fixed_final:.2f}") for spectrum, kappa, c0, fixed_final in sens])))
extreme = [s for s in sens if s[0] == "extreme" and s[1] >= 300 and np.isfinite(s[3])]
glue("sens_fixed_min", min(s[3] for s in extreme), display=False)
glue("sens_fixed_max", max(s[3] for s in extreme), display=False)
glue("sens_kappa_max", max(s[1] for s in extreme), display=False)
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
# With the Chebyshev spectrum and $\kappa$ from 300 to {glue:text}`sens_kappa_max:g`, the
# calibrated setups predict a best fixed loss between {glue:text}`sens_fixed_min:.2f` and
# {glue:text}`sens_fixed_max:.2f`, against the paper's {glue:text}`paper_fixed:.2f`: once
# $c_0$ is calibrated, the choice $\kappa = $ {glue:text}`kappa:.0f` hardly matters for this
# prediction. {glue:md}`sens_geometric`
#
# ### The optimizer: Adam as in the paper, against the converged fit
#
# The paper fitted the optimized schedule with Adam. The same bounded problem, from the same
# fixed start, with Adam on $(\log\alpha_t, \operatorname{logit}\mu_t)$ (on the loss itself, as
# the paper does), for the paper's 500 steps and, in the `paper` profile, longer:

# %%
adam_runs = pick(profile, {"smoke": [], "quick": [(0.1, 500)],
                           "paper": [(0.003, 500), (0.1, 500), (0.1, 2000)]})
fixed_start = (torch.as_tensor(fig3["alphas"][0, 2]), torch.as_tensor(fig3["mus"][0, 2]))
rows = [("L-BFGS on the log loss (above)", "-", opt_iters, f"{final['optimized']:.3f}")]
adam_finals = []
for lr, steps_v in adam_runs:
    fit_v = fit_schedule(*problem.arrays, *fixed_start, steps=steps_v, lr=lr,
                         parameterization="log", bound=True)
    adam_finals.append(float(fit_v.losses[-1]))
    rows.append(("Adam", f"{lr:g}", steps_v, f"{adam_finals[-1]:.3f}"))
display(Markdown(markdown_table(["optimizer", "Adam lr", "steps / iterations", "final loss"], rows)))
if adam_finals:
    glue("adam_phrase", Markdown(
        f"Adam's best run here ends at {min(adam_finals):.3f}, "
        + ("above" if min(adam_finals) > final["optimized"] else "below")
        + f" the converged fit's {final['optimized']:.3f}"), display=False)
else:
    glue("adam_phrase", Markdown("(the `smoke` profile runs no Adam comparison)"), display=False)

# %% [markdown]
# {glue:md}`adam_phrase`. The optimized loss is the least pinned-down of the three numbers: it
# depends on how far the fit is run and on how the bound is enforced, which the paper does not
# specify; all of these fits end far below greedy, which is the paper's point.
#
# ## Exercises
#
# **1. Heavy ball.** For a deterministic quadratic with curvatures in $[a, b]$ the classical
# heavy-ball parameters, which give the best asymptotic rate, are
# $\alpha = 4/(\sqrt a + \sqrt b)^2$ and $\mu = \big((\sqrt\kappa - 1)/(\sqrt\kappa + 1)\big)^2$.
# Compare them with the best fixed schedule of Figure 3(b). Why can they differ?
#
# ```{admonition} Solution
# :class: dropdown
# For $\kappa =$ {glue:text}`kappa:.0f` heavy ball takes $\alpha =$ {glue:text}`ex_hb_alpha:.3f`,
# $\mu =$ {glue:text}`ex_hb_mu:.4f`; the global search over 250 steps found $\alpha =$
# {glue:text}`ex_fixed_alpha:.3f`, $\mu =$ {glue:text}`ex_fixed_mu:.4f`, {glue:md}`ex_hb_direction`.
# Heavy ball's final loss after 250 steps is {glue:text}`ex_hb_ratio:.0f` times the best fixed
# schedule's. The heavy-ball pair minimises the worst-case *asymptotic* rate over the whole
# interval, and there the iteration matrices of both extreme curvatures have a double
# eigenvalue (the hidden check confirms the zero discriminant), so their error decays like
# $t\rho^t$ rather than $\rho^t$; over a finite horizon that factor $t$ costs more than the
# slightly slower rate of a pair that stays away from the double eigenvalue.
# ```
#
# **2. The calibrated start.** Greedy's final loss was calibrated through $c_0$. If $c_0$ doubles,
# by what factor does greedy's final loss change in the deterministic case, and in the noisy one?
#
# ```{admonition} Solution
# :class: dropdown
# Deterministic: exactly 4. With $\sigma = 0$ and $\mathbb{V}[\theta_0] = 0$ every second moment is
# quadratic in $c_0$, and Theorem 2's coefficients are ratios in which $c_0^2$ cancels, so the
# whole greedy run scales by $c_0^2$ (computed: {glue:text}`ex_c0_det:.6f`). Noisy: less than 4
# (computed: {glue:text}`ex_c0_noisy:.2f`): the part of the final loss that comes from the noise
# floor does not scale with the start, and greedy adapts its steps to it. This is why $c_0$ can
# be calibrated at all: the greedy loss increases with $c_0$, but not in proportion.
# ```

# %% tags=["remove-cell"]
# Exercise 1: heavy ball against the best fixed schedule, deterministic case
_a, _b = float(problem.h.min()), float(problem.h.max())
ex_hb_alpha = float(4 / (np.sqrt(_a) + np.sqrt(_b)) ** 2)
ex_hb_mu = float(((np.sqrt(_b / _a) - 1) / (np.sqrt(_b / _a) + 1)) ** 2)
# at the heavy-ball pair both ends of the spectrum have a double eigenvalue (zero discriminant)
for _h in (_a, _b):
    assert abs((1 + ex_hb_mu - ex_hb_alpha * _h) ** 2 - 4 * ex_hb_mu) < 1e-9
det_arrays = problem.deterministic().arrays
ex_hb_loss = float(fixed_final_loss(*det_arrays, ex_hb_alpha, ex_hb_mu, problem.horizon))
ex_fixed_alpha, ex_fixed_mu = float(fig3["fixed_alpha"][1]), float(fig3["fixed_mu"][1])
assert ex_hb_loss >= det["fixed"] * (1 - 1e-6)   # the global search is at least as good
glue("ex_hb_alpha", ex_hb_alpha, display=False)
glue("ex_hb_mu", ex_hb_mu, display=False)
glue("ex_fixed_alpha", ex_fixed_alpha, display=False)
glue("ex_fixed_mu", ex_fixed_mu, display=False)
glue("ex_hb_ratio", float(ex_hb_loss / det["fixed"]), display=False)
assert ex_hb_loss / det["fixed"] > 10
glue("ex_hb_direction", Markdown(
    f"a {'smaller' if ex_fixed_alpha < ex_hb_alpha else 'larger'} learning rate and "
    f"{'less' if ex_fixed_mu < ex_hb_mu else 'more'} momentum"), display=False)
# Exercise 2: doubling c0
_p2 = make_problem(c0=2 * problem.info["c0"])
_s2 = torch.stack([_p2.sigma2, torch.zeros_like(_p2.sigma2)])
_g2 = greedy_schedule(_p2.h, _s2, _p2.mean0, _p2.var0, _p2.horizon).losses[:, -1]
ex_c0_noisy = float(_g2[0]) / float(fig3["final_losses"][1])
ex_c0_det = float(_g2[1]) / float(det["greedy"])
assert abs(ex_c0_det - 4) < 1e-6 and 1 < ex_c0_noisy < 4, (ex_c0_det, ex_c0_noisy)
glue("ex_c0_det", ex_c0_det, display=False)
glue("ex_c0_noisy", ex_c0_noisy, display=False)

# %% [markdown]
# ## Reproducibility
#
# The Figure 3 arrays are saved by `python -m shortbias_lib figure3 --profile quick`
# (function `shortbias_lib.noisy_quadratic.run_figure3`) to `figure3_<profile>_seed<seed>.npz`
# in the results folder, with their provenance; this page read or computed that file.

# %%
glue("chapter_seconds", time.perf_counter() - chapter_start, display=False)

# %% [markdown]
# This chapter ran in {glue:text}`chapter_seconds:.0f` s.

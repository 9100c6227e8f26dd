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
# %%
# %matplotlib inline
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from shortbias_lib.experiments import figure3 as nq
from shortbias_lib.chapters import nqm_experiments as facts
from shortbias_lib.plots import common as plotting
from shortbias_lib.notebook import glue_facts
from shortbias_lib.nqm.dynamics import dynamics, greedy_schedule
from shortbias_lib.nqm.fixed import fixed_final_loss
from shortbias_lib.nqm.gradient import fit_schedule
from shortbias_lib.nqm.montecarlo import monte_carlo
from shortbias_lib.nqm.problem import constant_schedule, decayed_schedule, make_problem
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
glue_facts(facts.problem_facts(problem))

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
start = (1 / h2, torch.tensor([1.0, 4.0], dtype=torch.float64),
         torch.zeros(2, dtype=torch.float64))
k_aggr, decay_steps = 100, 50
conservative = constant_schedule(0.1, k_aggr + decay_steps)
aggressive = decayed_schedule(torch.tensor(1.0, dtype=torch.float64), k_aggr,
                              decay_steps, 0.01)
loss_c = dynamics(h2, *start, *conservative)
loss_a = dynamics(h2, *start, *aggressive)
mc_c = monte_carlo(h2, *start, *conservative, n_samples=2000, seed=seed, n_paths=1)
mc_a = monte_carlo(h2, *start, *aggressive, n_samples=2000, seed=seed + 1, n_paths=1)
glue_facts(facts.figure1_facts(loss_c, loss_a, k_aggr))

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
ks = pick(profile, {"smoke": [10, 50, 250], "quick": [10, 25, 50, 100, 250],
                    "paper": [10, 25, 50, 100, 250]})
lr_top = 4.0
n_lrs = pick(profile, {"smoke": 30, "quick": 80, "paper": 80})
lrs = torch.logspace(-3, np.log10(lr_top), n_lrs, dtype=torch.float64)
# final loss per (k, learning rate): fixed rate, and with the decay after
solid, dashed = [], []
with torch.no_grad():
    for k in ks:
        solid.append(dynamics(*problem.arrays, *constant_schedule(lrs, k))[..., -1])
        decayed = decayed_schedule(lrs, k, 50, 0.01)
        dashed.append(dynamics(*problem.arrays, *decayed)[..., -1])
solid, dashed = torch.stack(solid).numpy(), torch.stack(dashed).numpy()
glue_facts(facts.figure2_facts(ks, lrs, solid, dashed, lr_top))

# %% mystnb={"figure": {"caption": "Figure 2 regenerated: expected excess loss of plain SGD on the 1000-dimensional noisy quadratic after k steps at a fixed learning rate (solid) and after the same k steps followed by 50 steps of exponential decay (dashed), against the learning rate. Dots: each curve's minimum on the grid; a dot at the right edge of the grid marks a lower bound on the best learning rate, not a minimum.", "name": "fig-nqm-2"}}
fig = plotting.horizon_lr_curves(ks, lrs, solid, dashed)
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
fig3 = nq.run_figure3(profile, device=device, seed=seed, results=results,
                      resume=True).arrays
glue_facts(facts.figure3_facts(fig3, problem))
display(Markdown(facts.figure3_table(fig3)))

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
fig = plotting.figure3_panels(fig3, case=0)
plt.show()
glue_facts(facts.figure3a_facts(fig3))

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
fig = plotting.figure3_panels(fig3, case=1, curvature_groups=False)
plt.show()
glue_facts(facts.figure3b_facts(fig3))

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
    "quick": [("extreme", 300.0), ("extreme", 1000.0), ("extreme", 2000.0),
              ("extreme", 1e4), ("extreme", 1e5), ("zeros", 2000.0),
              ("geometric", 2000.0)],
    "paper": [("extreme", 100.0), ("extreme", 300.0), ("extreme", 1000.0),
              ("extreme", 2000.0), ("extreme", 1e4), ("extreme", 1e5),
              ("zeros", 2000.0), ("geometric", 2000.0)]})
c0s, fixed_finals = nq.calibrated_fixed(settings)
display(Markdown(facts.sensitivity_table(settings, c0s, fixed_finals)))
glue_facts(facts.sensitivity_facts(settings, c0s, fixed_finals))

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
fixed_start = (torch.as_tensor(fig3["alphas"][0, 2]),
               torch.as_tensor(fig3["mus"][0, 2]))
optimized_final = float(fig3["final_losses"][0])
rows = [("L-BFGS on the log loss (above)", "-", int(fig3["start_iterations"][0, 1]),
         f"{optimized_final:.3f}")]
adam_finals = []
for lr, steps in adam_runs:
    fit = fit_schedule(*problem.arrays, *fixed_start, steps=steps, lr=lr,
                       parameterization="log", bound=True)
    adam_finals.append(float(fit.losses[-1]))
    rows.append(("Adam", f"{lr:g}", steps, f"{adam_finals[-1]:.3f}"))
display(Markdown(markdown_table(
    ["optimizer", "Adam lr", "steps / iterations", "final loss"], rows)))
glue_facts(facts.adam_facts(adam_finals, optimized_final))

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

# %% tags=["solution", "hide-cell"]
a, b = float(problem.h.min()), float(problem.h.max())
hb_alpha = 4 / (np.sqrt(a) + np.sqrt(b)) ** 2
hb_mu = ((np.sqrt(b / a) - 1) / (np.sqrt(b / a) + 1)) ** 2
for h in (a, b):   # both ends of the spectrum: a double eigenvalue (zero discriminant)
    assert abs((1 + hb_mu - hb_alpha * h) ** 2 - 4 * hb_mu) < 1e-9
hb_loss = float(fixed_final_loss(*problem.deterministic().arrays, hb_alpha, hb_mu,
                                 problem.horizon))
det = dict(zip(fig3["schedules"], fig3["final_losses_deterministic"]))
best_alpha, best_mu = float(fig3["fixed_alpha"][1]), float(fig3["fixed_mu"][1])
# the global search wins by far
assert det["fixed"] * (1 - 1e-6) <= hb_loss and hb_loss / det["fixed"] > 10
print(f"heavy ball: alpha = {hb_alpha:.3f}, mu = {hb_mu:.4f}, final loss {hb_loss:.3e}")
print(f"best fixed: alpha = {best_alpha:.3f}, mu = {best_mu:.4f}, "
      f"final loss {det['fixed']:.3e}")
direction = (f"a {'smaller' if best_alpha < hb_alpha else 'larger'} learning rate and "
             f"{'less' if best_mu < hb_mu else 'more'} momentum")
glue_facts({"ex_hb_alpha": float(hb_alpha), "ex_hb_mu": float(hb_mu),
            "ex_fixed_alpha": best_alpha, "ex_fixed_mu": best_mu,
            "ex_hb_ratio": float(hb_loss / det["fixed"]),
            "ex_hb_direction": Markdown(direction)})

# %% [markdown] tags=["solution"]
# ```{admonition} Solution
# :class: dropdown
# For $\kappa =$ {glue:text}`kappa:.0f` heavy ball takes $\alpha =$ {glue:text}`ex_hb_alpha:.3f`,
# $\mu =$ {glue:text}`ex_hb_mu:.4f`; the global search over 250 steps found $\alpha =$
# {glue:text}`ex_fixed_alpha:.3f`, $\mu =$ {glue:text}`ex_fixed_mu:.4f`, {glue:md}`ex_hb_direction`.
# Heavy ball's final loss after 250 steps is {glue:text}`ex_hb_ratio:.0f` times the best fixed
# schedule's. The heavy-ball pair minimises the worst-case *asymptotic* rate over the whole
# interval, and there the iteration matrices of both extreme curvatures have a double
# eigenvalue (the code checks the zero discriminant), so their error decays like
# $t\rho^t$ rather than $\rho^t$; over a finite horizon that factor $t$ costs more than the
# slightly slower rate of a pair that stays away from the double eigenvalue.
# ```

# %% [markdown]
# **2. The calibrated start.** Greedy's final loss was calibrated through $c_0$. If $c_0$ doubles,
# by what factor does greedy's final loss change in the deterministic case, and in the noisy one?

# %% tags=["solution", "hide-cell"]
doubled = facts.with_c0(problem, 2 * problem.info["c0"])
# two rows: noisy and deterministic
sigma2 = torch.stack([doubled.sigma2, torch.zeros_like(doubled.sigma2)])
greedy_doubled = greedy_schedule(doubled.h, sigma2, doubled.mean0, doubled.var0,
                                 doubled.horizon).losses[:, -1]
factor_noisy = float(greedy_doubled[0]) / float(fig3["final_losses"][1])
factor_det = float(greedy_doubled[1]) / float(det["greedy"])
assert abs(factor_det - 4) < 1e-6 and 1 < factor_noisy < 4, (factor_det, factor_noisy)
print(f"greedy's final loss grows {factor_det:.6f} times (deterministic), "
      f"{factor_noisy:.2f} times (noisy)")
glue_facts({"ex_c0_det": factor_det, "ex_c0_noisy": factor_noisy})

# %% [markdown] tags=["solution"]
# ```{admonition} Solution
# :class: dropdown
# Deterministic: exactly 4. With $\sigma = 0$ and $\mathbb{V}[\theta_0] = 0$ every second moment is
# quadratic in $c_0$, and Theorem 2's coefficients are ratios in which $c_0^2$ cancels, so the
# whole greedy run scales by $c_0^2$ (computed: {glue:text}`ex_c0_det:.6f`). Noisy: less than 4
# (computed: {glue:text}`ex_c0_noisy:.2f`): the part of the final loss that comes from the noise
# floor does not scale with the start, and greedy adapts its steps to it. This is why $c_0$ can
# be calibrated at all: the greedy loss increases with $c_0$, but not in proportion.
# ```

# %% [markdown]
# ## Reproducibility
#
# The Figure 3 arrays are saved by `python -m shortbias_lib figure3 --profile quick`
# (function `shortbias_lib.experiments.figure3.run_figure3`) to `figure3_<profile>_seed<seed>.npz`
# in the results folder, with their provenance; this page read or computed that file.

# %%
glue_facts({"chapter_seconds": time.perf_counter() - chapter_start})

# %% [markdown]
# This chapter ran in {glue:text}`chapter_seconds:.0f` s.

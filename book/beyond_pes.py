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
# # Beyond the paper: an unbiased truncated estimator (PES)
#
# Short-horizon meta-optimization in practice is *online*: the inner run is split into
# windows of $W$ steps, a hypergradient is estimated on each window, and the hyperparameters
# are updated as training goes. This chapter compares, on such a task, the truncated
# (short-horizon) hypergradient with a method from later work that removes the bias of
# truncated unrolls, Persistent Evolution Strategies (PES): on the noisy quadratic of the
# [previous chapter](beyond), where everything is exact, and at small scale on the offline
# MNIST experiment's decay schedule.

# %% tags=["parameters", "remove-cell"]
profile = "quick"
device = "auto"
seed = 0
data_root = None
results = None

# %% tags=["remove-input"]
from shortbias_lib.notebook import setup

context = setup(profile, device, seed, data_root, results, threads=2)

# %%
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from shortbias_lib.experiments.beyond import experiment as beyond
from shortbias_lib.experiments.beyond import figures as plot_beyond
from shortbias_lib.chapters import beyond as beyond_facts
from shortbias_lib.nqm import horizon_bias, pes
from shortbias_lib.notebook import glue_facts

# %% [markdown]
# The results come from the same experiment as the previous chapter's (saved, and reused on a
# rerun with the same configuration), here with its MNIST part:

# %% tags=["hide-output"]
res, meta = beyond.run_beyond(profile, device=device, seed=seed, data_root=data_root,
                              results=context.results_dir)
cfg = meta["config"]

# %% [markdown]
# ## Truncation against PES on the noisy quadratic
#
# We set up an online task on the noisy quadratic: plain SGD ($\mu = 0$) with a constant
# learning rate $\alpha = e^{\theta}$ on {glue:text}`by_pes_n` dimensions ($\kappa$ =
# {glue:text}`by_kappa:.0f`, $s = 1$) for $T$ = {glue:text}`by_pes_T` steps, split into windows
# of $W$ = {glue:text}`by_pes_W`, with the long-horizon meta-objective
#
# $$
# F(\theta) = \frac{1}{J} \sum_{j=1}^{J} \log \mathcal{L}\big(s_{jW}(\theta)\big), \qquad J = T / W,
# $$
#
# the mean log expected loss at the end of each window ($s_t$ is the inner state,
# Theorem 1's moments). Two estimators of $\nabla F$ that each look at one window at a time:
#
# * **Truncated** (truncated backprop through the window, a short-horizon hypergradient):
#   $\hat g_j = \partial \log \mathcal{L}(s_{jW}) / \partial\theta$ with the incoming state
#   $s_{(j-1)W}$ held fixed. It drops every effect of $\theta$ that reaches a later window
#   through the state.
# * **PES** (Vicol, Metz & Sohl-Dickstein, *Unbiased Gradient Estimation in Unrolled
#   Computation Graphs with Persistent Evolution Strategies*, ICML 2021, Algorithm 2 with
#   antithetic sampling): $N$ particles, each with its own inner state, run window $j$ with
#   $\theta + \epsilon_i$, $\epsilon_i \sim \mathcal{N}(0, \sigma^2)$ drawn afresh every window
#   in antithetic pairs, and keep the sum $\xi_i$ of all the perturbations they have received;
#   $\hat g_j = \frac{1}{N\sigma^2} \sum_i \xi_i\, \log \mathcal{L}_i(s_{jW})$. Because $\xi_i$
#   carries every earlier perturbation, the sum over an episode is an unbiased estimate of the
#   gradient of the Gaussian-smoothed $F$ (which tends to $\nabla F$ as $\sigma \to 0$).
#
# What is reproduced of the PES paper: the estimator and its central claim, unbiasedness under
# truncation, checked here by Monte Carlo against the exact gradient, and its use for online
# meta-optimization with plain SGD on the meta-parameter. Not reproduced: their tasks (a toy
# 2-D influence-balancing problem, learned optimizers, RNN and MNIST hyperparameter tuning),
# and their variance analysis. Both estimators live in `shortbias_lib.nqm.pes`; on one task:

# %%
problem = horizon_bias.noisy_problem(cfg["pes_n"], cfg["kappa"], 1.0, cfg["c0"])
# plain SGD, alpha = exp(theta)
task = pes.MetaTask(problem, cfg["pes_horizon"], cfg["pes_window"])
theta = torch.tensor([math.log(0.05)], dtype=torch.float64)           # alpha = 0.05
exact = task.gradient(theta[None])[0, 0]
# summed over the windows
truncated = pes.truncated_estimates(task, theta[None]).sum(-2)[0, 0]
generator = torch.Generator().manual_seed(seed)
pes_runs = pes.pes_estimates(task, theta, pairs=8, sigma=0.05, runs=200,
                             generator=generator)
pes_mean = pes_runs.sum(1)[:, 0].mean()
print(f"dF/dlog(alpha) at alpha = 0.05: exact {exact:.4f}, "
      f"truncated {truncated:.4f}, PES {pes_mean:.4f}")

# %% [markdown]
# **Predicted sign of the bias.** In plain SGD each dimension's second moment follows
# $A' = (1 - \alpha h)^2 A + \alpha^2 h^2 \sigma^2$, which is increasing in $A$, so a later
# window's loss increases with the state it inherits. A larger $\alpha$ in window $j$ lowers
# the low-curvature moments, which persist for many windows, and raises the high-curvature
# ones, which are forgotten within a few steps. The terms truncation drops are therefore
# dominated by the helpful, persistent effect, so they are negative, and the truncated
# estimate is *larger* than the true gradient: at the true optimum it is positive and pushes
# $\alpha$ down. Truncation settles at a learning rate that is too small, the paper's
# short-horizon bias as online SMD meets it. (In the previous chapter a short horizon counted
# from $\theta_0$ chose a constant step that was too *large*: that horizon is dominated by the
# fast early progress on high-curvature directions; a window late in training sees mainly
# their noise floor, where a small step pays. Online SMD, like the paper's Section 3.3, is in
# the second situation. With heavy momentum the velocity carries the noise injected at the end
# of one window into the next, and we found the sign can flip; the tests check the plain-SGD
# prediction.)

# %% mystnb={"figure": {"caption": "Truncated hypergradient against PES on the noisy quadratic. Left: the long-horizon meta-objective's exact gradient dF/dlog(alpha) (black), the truncated estimate summed over an episode (orange), and PES's Monte Carlo mean with two standard errors (blue); dotted lines mark the true optimum and the truncated fixed point. Right: log(alpha) during online meta-optimization (one SGD update per window), from alpha = 0.01.", "name": "fig-beyond-pes"}}
fig = plot_beyond.plot_pes_quadratic(res, cfg["pes_runs"])
plt.show()

# %% tags=["remove-cell"]
glue_facts(beyond_facts.pes_facts(res, cfg))

# %% [markdown]
# The long-horizon optimum is $\alpha$ = {glue:text}`by_alpha_opt:.3g`; the truncated
# estimate, summed over an episode, vanishes at $\alpha$ = {glue:text}`by_alpha_trunc:.3g`,
# {glue:text}`by_alpha_ratio:.2f` times smaller, where $F$ is {glue:text}`by_F_trunc:.3f`
# instead of {glue:text}`by_F_opt:.3f` (a mean of logs: the loss is on average
# {glue:text}`by_F_pct:.0f`% higher across the windows). $F$ weighs every window equally, so
# its optimum is not the best constant rate for the *final* loss alone, which a scan puts at
# $\alpha$ = {glue:text}`by_alpha_final:.3g` (final loss {glue:text}`by_loss_final_best:.3g`;
# {glue:text}`by_loss_opt:.3g` at $F$'s optimum and {glue:text}`by_loss_trunc:.3g` at the
# truncated point). Which objective is wanted is the user's choice; the estimator's bias is
# not, and it is the paper's kind: an online short-horizon estimate wants a smaller learning
# rate than its objective. PES's Monte Carlo means lie on the exact gradient (largest
# deviation {glue:text}`by_pes_zmax:.2f` standard errors over {glue:text}`by_pes_checks`
# points, {glue:text}`by_pes_runs` episodes each), while the truncated curve is visibly
# shifted. Online, with {glue:text}`by_pes_pairs` particles and {glue:text}`by_pes_episodes`
# episodes of updates, truncation creeps up towards its fixed point ($\alpha$ =
# {glue:text}`by_trunc_end:.3g` after the last episode, against
# {glue:text}`by_alpha_trunc:.3g` at the fixed point: small meta-steps are slow, but they
# cannot take it past the point where its estimate vanishes on average), and PES fluctuates
# around $\alpha$ = {glue:text}`by_pes_end:.3g` (mean of the second half, in $\log\alpha$;
# standard deviation {glue:text}`by_pes_end_sd:.2f`), {glue:md}`by_pes_where`. The price of
# PES is variance, and its unbiasedness is exact only for a fixed $\theta$; with $\theta$
# updated every window it holds in the limit of small meta-steps, as in the PES paper.
# Truncation is also cheaper per window (one backward pass against
# {glue:text}`by_pes_pairs` forward unrolls), but the bias, not the cost, is what the
# short-horizon problem is about: no number of truncated updates moves it to the optimum.
# These results took {glue:text}`by_seconds:.0f` s, with the previous chapter's.

# %% [markdown]
# ## The same comparison on MNIST, small scale
#
# The meta-parameters are now the offline MNIST experiment's decay schedule,
# $\theta = (\log\alpha_0, \log\beta)$ with $\alpha_t = \alpha_0 / (1 + t/K)^\beta$,
# $K = T/4$, $\mu = 0.9$, on the paper's MLP warm-started as in that experiment (50 steps,
# $\alpha = 0.1$). To fit in this page's budget on two CPU cores everything is small: the
# inner run has $T$ = {glue:text}`by_m_T` steps (batches of 100 from the first
# {glue:text}`by_m_train` training images, the same batch sequence in every episode, so $F$
# is a deterministic function of $\theta$), windows of $W$ = {glue:text}`by_m_W` steps, $F$ is
# the mean over windows of the log training loss on {glue:text}`by_m_eval` fixed training
# images, and PES uses {glue:text}`by_m_particles` particles with $\sigma$ =
# {glue:text}`by_m_sigma`. The exact $\nabla F$ is computed by reverse mode through all $T$
# steps (second-order derivatives of the network), so here too each estimator is compared with
# the truth; PES with {glue:text}`by_m_runs` independent episodes per point. This is far from
# the paper's horizons (up to 20000 steps): it tests the estimators, not the MNIST schedules'
# long-run behaviour.

# %% mystnb={"figure": {"caption": "Truncated hypergradient against PES on the MNIST decay schedule (small scale). Left: the two components of dF/dtheta at each checked (alpha_0, beta): exact (black bars), truncated (orange) and PES mean with two standard errors (blue). Right: (log10 alpha_0, log10 beta) during online meta-optimization (one SGD update per window) from the same start.", "name": "fig-beyond-pes-mnist"}}
fig = plot_beyond.plot_pes_mnist(res)
plt.show()

# %%
display(Markdown(beyond_facts.pes_mnist_check_table(res)))

# %% tags=["remove-cell"]
glue_facts(beyond_facts.pes_mnist_facts(res, meta["mnist"]["config"]))

# %% [markdown]
# $|z|$ is the distance from the exact gradient in PES standard errors. PES's means lie within
# {glue:text}`by_m_zpes_max:.2f` standard errors of the exact gradient in all
# {glue:text}`by_m_ncomp` components{glue:md}`by_m_zpes_note`; the truncated estimate is
# {glue:text}`by_m_ztrunc_max:.1f` standard errors away at most
# ({glue:text}`by_m_ztrunc_min:.1f` at least), a relative error of up to
# {glue:text}`by_m_trunc_relerr:.0f`% of the exact gradient. {glue:md}`by_m_sign`
#
# Online, from $\alpha_0$ = {glue:text}`by_m_a0_start:.3g`, $\beta$ =
# {glue:text}`by_m_b_start:.3g` ($F$ = {glue:text}`by_m_F_start:.3f`),
# {glue:text}`by_m_episodes` episodes of updates (mean of the last episode's meta-steps) take
# truncation to $\alpha_0$ = {glue:text}`by_m_a0_truncated:.3g`, $\beta$ =
# {glue:text}`by_m_b_truncated:.3g` ($F$ = {glue:text}`by_m_F_truncated:.3f`) and PES to
# $\alpha_0$ = {glue:text}`by_m_a0_pes:.3g`, $\beta$ = {glue:text}`by_m_b_pes:.3g` ($F$ =
# {glue:text}`by_m_F_pes:.3f`); {glue:text}`by_m_better` ends at the lower $F$. With so few,
# noisy meta-steps this online comparison is one run, not a measured difference between the
# methods' fixed points; the gradient checks above are the measured part. The MNIST part took
# {glue:text}`by_m_seconds:.0f` s.
#
# **Is there one true gradient to compare with?** The exact gradient is the derivative of this
# particular training run, and a training run is not a smooth function of its learning rate
# at every scale. Central differences of $F$ along $\log\alpha_0$,
# $(F(\theta + h e_1) - F(\theta - h e_1)) / 2h$, for shrinking steps $h$:

# %%
mnist_sigma = meta["mnist"]["config"]["sigma"]
display(Markdown(beyond_facts.pes_mnist_fd_table(res, mnist_sigma)))

# %% [markdown]
# Over these steps the differences spread over {glue:text}`by_m_spread_min:.2f` to
# {glue:text}`by_m_spread_max:.2f` times the exact derivative's size{glue:md}`by_m_fd_note`:
# {glue:md}`by_m_rough`. Where $F$ is rough, the pointwise derivative and the gradient of the
# Gaussian-smoothed objective that PES estimates are different quantities, and the standard
# errors above do not include that difference. The noisy quadratic, whose expected loss is
# smooth, has no such ambiguity, and there PES matched the exact gradient.

# %% [markdown]
# ## Exercises
#
# The functions of `shortbias_lib.nqm.horizon_bias` and `shortbias_lib.nqm.pes` are enough for both.
#
# **1. Truncation bias.** With
# `task = pes.MetaTask(horizon_bias.noisy_problem(50, 1000.0), 200, W)`, find the fixed point
# of the truncated estimator (`pes.fixed_point_1d` on
# `pes.truncated_estimates(task, [x]).sum(-2)[0]`) and the optimum of the task's own $F$ (the
# same on `task.gradient([x])[0]`) for windows $W = 1, 10, 50, 200$. What happens at
# $W = 200$, and why?

# %% tags=["solution", "hide-cell"]
ratios = []
for W in (1, 10, 50, 200):
    task = pes.MetaTask(horizon_bias.noisy_problem(50, 1000.0), 200, W)
    # both points lie inside; 14 halvings: 3e-4 in log alpha
    lo, hi = math.log(0.01), math.log(1.0)
    fixed = pes.fixed_point_1d(
        lambda x: float(pes.truncated_estimates(task, [x]).sum(-2)[0]),
        lo, hi, iters=14)
    best = pes.fixed_point_1d(lambda x: float(task.gradient([x])[0]), lo, hi, iters=14)
    ratios.append(math.exp(best - fixed))   # optimum / truncated fixed point, in alpha
print("optimum / truncated fixed point for W = 1, 10, 50, 200:", np.round(ratios, 3))
glue_facts(beyond_facts.exercise5_facts(ratios))

# %% [markdown] tags=["solution"]
# ```{admonition} Solution
# :class: dropdown
# The objective $F$ itself depends on $W$ (it averages the loss at the window ends), so
# compare each fixed point with its own task's optimum. The truncated fixed point is below the
# optimum, and the ratio optimum / fixed point shrinks towards 1 as $W$ grows
# ({glue:text}`by_ex5_ratios` for $W$ = 1, 10, 50, 200). At $W = T = 200$ there is one window
# and no truncation: the estimate is the exact gradient and its fixed point is the optimum (a
# test checks this identity). Short windows drop more of the future effect of the learning
# rate on the slowly converging low-curvature directions, so they choose smaller learning
# rates.
# ```

# %% [markdown]
# **2. PES variance.** Estimate the standard deviation of the PES estimate per episode with
# `pes.pes_estimates(task, theta, pairs=P, sigma=sigma, runs=200)` for several $\sigma$ and
# $P$, and with `antithetic=False` (independent perturbations). How does it scale, and why
# does antithetic sampling matter?

# %% tags=["solution", "hide-cell"]
generator = torch.Generator().manual_seed(seed)
theta = torch.tensor([math.log(0.2)], dtype=torch.float64)


def pes_sd(windows, pairs, sigma, runs=200, antithetic=True):
    """Spread of PES's episode estimate at alpha = 0.2, 200 steps in windows of W."""
    task = pes.MetaTask(horizon_bias.noisy_problem(50, 1000.0), 200, windows)
    est = pes.pes_estimates(task, theta, pairs=pairs, sigma=sigma, runs=runs,
                            generator=generator, antithetic=antithetic)
    return float(est.sum(1)[:, 0].std())


by_pairs = [pes_sd(10, P, 0.01) for P in (1, 4, 16)]
by_sigma = [pes_sd(10, 4, s) for s in (0.1, 0.01, 0.001)]
by_sigma_independent = [pes_sd(10, 4, s, antithetic=False) for s in (0.1, 0.01, 0.001)]
one_window = pes_sd(200, 4, 0.01, runs=400)
twenty_windows = pes_sd(10, 4, 0.01, runs=400)
print("standard deviation for P = 1, 4, 16:", np.round(by_pairs, 3))
print("for sigma = 0.1, 0.01, 0.001, antithetic:", np.round(by_sigma, 3))
print("                      independent:", np.round(by_sigma_independent, 3))
glue_facts(beyond_facts.exercise6_facts(by_pairs, by_sigma, by_sigma_independent,
                                        one_window, twenty_windows))

# %% [markdown] tags=["solution"]
# ```{admonition} Solution
# :class: dropdown
# The standard deviation falls like $1/\sqrt{P}$. With antithetic pairs the estimate depends
# on the *difference* of the two particles' losses, $O(\sigma)$, divided by $\sigma$, so it
# stays bounded as $\sigma \to 0$; without them the loss itself, $O(1)$, divided by $\sigma$
# makes the variance blow up like $1/\sigma^2$. It also grows with the number of windows,
# since $\xi$ accumulates a perturbation per window. For the task above with $W = 10$ at
# $\alpha = 0.2$ (200 episodes each): $P$ = 1, 4, 16 give standard deviations
# {glue:text}`by_ex6_pairs` at $\sigma = 0.01$; $\sigma$ = 0.1, 0.01, 0.001 give
# {glue:text}`by_ex6_sigmas` with antithetic pairs ($P = 4$) and {glue:text}`by_ex6_plain`
# with $2P$ independent perturbations instead; one window of 200 steps ($W = 200$) gives
# {glue:text}`by_ex6_one_window:.3g` against {glue:text}`by_ex6_twenty:.3g` for twenty windows.
# ```

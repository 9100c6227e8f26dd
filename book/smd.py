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
# # Stochastic meta-descent
#
# Section 3 of the paper tunes the learning rate (and momentum, or a decay schedule) of a
# neural network by gradient descent on the hyperparameters themselves: stochastic
# meta-descent (SMD, Schraudolph 1999) in the simplified form of the paper's Algorithm 1.
# Every meta step runs $T$ steps of SGD with momentum from the current weights (the
# *lookahead*), measures the loss after them (the *meta-objective*), and moves the
# hyperparameters along the exact derivative of that loss (the *hypergradient*). This chapter
# builds that engine (`hypergrad`, `training` and `models` of `shortbias_lib.engine`), checks
# its hypergradients against two independent computations, and measures what forward mode
# costs in time and memory; the offline and online experiments of Sections 3.2-3.3 use it.

# %% tags=["parameters", "remove-cell"]
profile = "quick"
device = "auto"
seed = 0
data_root = None
results = None

# %% tags=["remove-input"]
from shortbias_lib.notebook import setup

context = setup(profile, device, seed, data_root, results, threads=1)  # steadier timings on a shared machine

# %%
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown

from shortbias_lib import data
from shortbias_lib.chapters import smd as smd_facts
from shortbias_lib.engine import batches, hvp, hypergrad, hyperparams, measure
from shortbias_lib.engine import meta_optim, models, training
from shortbias_lib.notebook import glue_facts, show_source
from shortbias_lib.plots.common import unrolled_sgd_graph
from shortbias_lib.profiles import pick

dev = context.device
sizes = pick(profile, smd_facts.SIZES)
mnist = data.load("mnist", train=True, root=data_root, limit=sizes["n_train"])
cifar = data.load("cifar10", train=True, root=data_root, limit=64)

# %% [markdown]
# ## Training unrolled as a computation graph
#
# SMD rests on one observation (Section 3.1): a run of a gradient-based optimizer is itself a
# differentiable computation. Unroll $T$ steps of SGD, $\theta_t = \theta_{t-1} - \alpha g_t$
# with $g_t$ the gradient of the loss on the minibatch $(X_t, y_t)$ at $\theta_{t-1}$, and the
# learning rate $\alpha$ becomes one more input of the graph, feeding every step; automatic
# differentiation gives $\partial L(\theta_T) / \partial \alpha$ of the loss after the last
# step, the *hypergradient*. The figure is our drawing of the paper's Figure 4.

# %% mystnb={"figure": {"caption": "SGD in the form of a computation graph (after the paper's Figure 4). Each step takes the weights and a minibatch, computes the gradient, and updates the weights with the learning rate alpha, a single input shared by all steps; the meta-objective L is measured after the last step, and the hypergradient (dashed) is its derivative with respect to alpha through the whole graph.", "name": "fig-smd-graph"}} tags=["hide-input"]
ax = unrolled_sgd_graph(steps=2)
plt.show()

# %% [markdown]
# Every path from $\alpha$ to $L(\theta_T)$ passes through the weights (a change of $\alpha$ at
# step 1 changes $\theta_1$, hence $g_2$ and every later step); forward mode sums them step by step.
#
# ## The inner optimizer and its hyperparameters
#
# The inner loop is SGD with momentum on the minibatch loss $\ell_t$. The paper writes it as
#
# $$ v_{t+1} = \mu v_t - \alpha_t \nabla \ell_t(w_t), \qquad w_{t+1} = w_t + v_{t+1}, $$
#
# while the authors' code uses the heavy-ball form (the one of `torch.optim.SGD`)
#
# $$ v_{t+1} = \mu v_t + \nabla \ell_t(w_t), \qquad w_{t+1} = w_t - \alpha_t v_{t+1}. $$
#
# With a constant $\alpha$ they are the same trajectory ($v^{\text{heavy}} = -v^{\text{paper}}/\alpha$);
# once $\alpha_t$ changes, the paper's velocity remembers the old rates and the code's is
# rescaled by the new one. The library has both (`convention="paper"` or `"heavy_ball"`).
# Rates follow a schedule: constant, inverse-time decay $\alpha_t = \alpha_0 / (1 + t/K)^\beta$
# (Section 3.2) or exponential decay to a target (Section 3.3).
#
# The hyperparameters are meta-optimized in log space, as in the paper and the code: the
# logarithm of the *effective* learning rate $\alpha/(1-\mu)$, of $1 - \mu$, and of the decay
# exponent $\beta$. Raw hypergradients are clipped to $\pm 10$ and the coordinates kept in
# the authors' bounds: effective learning rate in $[10^{-4}, 10]$, $1-\mu$ in $[10^{-4}, 1]$,
# $\beta$ in $[10^{-4}, 10^3]$.
#
# The networks are Section 3's MNIST MLP (784-100-100-10, ReLU) and CIFAR-10 CNN (convolutions
# of 32, 32 and 64 channels, each with 2x2 max-pooling and a ReLU, then 100 hidden units). We
# follow the paper where the authors' code differs, and the library exposes the code's choice:
# **filter size** 3x3, code 5x5 (`cnn_init(filter_size=...)`); **MLP initial weights**
# N(0, 0.1²), code N(0, 0.05²) (`mlp_init(init_std=...)`).
#
# Both conventions of the update are `training.momentum_step`:

# %% tags=["remove-input"]
show_source(training.momentum_step, "Source: `training.momentum_step`, the momentum update in both conventions")

# %% [markdown]
# ## Forward-mode hypergradients: Equations 8 and 9
#
# Take plain SGD first, $w_t = w_{t-1} - \alpha g_t$ with $g_t = \nabla \ell_t(w_{t-1})$, and
# write $u_t = \partial w_t / \partial \alpha$ and $H_t = \nabla^2 \ell_t(w_{t-1})$. The chain
# rule gives the paper's two equations: the derivative of the loss reached so far,
#
# $$ \frac{\partial \ell_t(w_{t-1})}{\partial \alpha} = g_t^\top u_{t-1}, \tag{8} $$
#
# and the recursion that carries the tangent $u_t$ forward with the weights,
#
# $$ u_t = u_{t-1} - g_t - \alpha H_t u_{t-1}. \tag{9} $$
#
# The Hessian is never formed: $H_t u_{t-1}$ is a Hessian-vector product, which costs a
# small multiple of a gradient. With momentum the state is $(w, v)$ and each
# hyperparameter $h_j$ (in log space) has a tangent pair $(\partial w / \partial h_j,
# \partial v / \partial h_j) = (\dot w, \dot v)$. Differentiating the paper's update,
#
# $$ \dot v_{t+1} = \mu \dot v_t + \dot\mu\, v_t - \dot\alpha_t\, g_t - \alpha_t H_t \dot w_t, \qquad
#    \dot w_{t+1} = \dot w_t + \dot v_{t+1}, $$
#
# and the heavy-ball update,
#
# $$ \dot v_{t+1} = \mu \dot v_t + \dot\mu\, v_t + H_t \dot w_t, \qquad
#    \dot w_{t+1} = \dot w_t - \dot\alpha_t\, v_{t+1} - \alpha_t \dot v_{t+1}, $$
#
# where $\dot\alpha_t = \partial \alpha_t / \partial h_j$ and $\dot \mu = \partial \mu /
# \partial h_j$ come from the parameterization (for $h = \log\frac{\alpha}{1-\mu}$,
# $\dot\alpha = \alpha$; for $h = \log(1-\mu)$ at fixed effective rate, $\dot\alpha = \alpha$ and
# $\dot\mu = -(1-\mu)$; for $h = \log \beta$, $\dot\alpha_t = -\alpha_t \beta \log(1 + t/K)$).
# After $T$ steps the hypergradient of the meta-objective $L(w_T)$ is
# $\nabla L(w_T)^\top \dot w_T$, Equation 8 at the end of the lookahead.
#
# The derivatives $\dot\alpha_t$ and $\dot\mu$ are `Hyperparameters.at`; the recursion is
# one step function per convention, and the lookahead with Equation 8 at the end is
# `hypergrad.hypergradient` (Equation 9 is its case $\mu = 0$):

# %% tags=["remove-input"]
show_source(hyperparams.Hyperparameters.at, "Source: `Hyperparameters.at`, the schedule and its derivatives")
show_source(hypergrad.paper_tangent_step, "Source: `hypergrad.paper_tangent_step`, Equation 9, paper convention")
show_source(hypergrad.heavy_ball_tangent_step, "Source: `hypergrad.heavy_ball_tangent_step`, Equation 9, heavy ball")
show_source(hypergrad.hypergradient, "Source: `hypergrad.hypergradient`, the lookahead and Equation 8")

# %% [markdown]
# **Forward versus reverse mode.** Reverse mode (backpropagating $L(w_T)$ through the $T$
# steps) costs one backward pass for any number of hyperparameters but keeps every state:
# memory linear in $T$. Forward mode carries one tangent per hyperparameter and drops each
# step once done: memory independent of $T$, one Hessian-vector product per step and
# hyperparameter. With 2-3 hyperparameters and lookaheads up to 20k steps, forward mode fits.
#
# ## Algorithm 1: stochastic meta-descent
#
# The paper's Algorithm 1 puts the pieces together: $\alpha$ the hyperparameters learned,
# $\theta$ the inner state (weights and velocities), $u = \partial\theta / \partial\alpha$, $\eta$
# the meta-optimizer's hyperparameters, $T$ the lookahead, $M$ the number of meta steps;
# $\operatorname{BGrad}$ is a backward (reverse-mode) gradient, $\operatorname{FGrad}$ a forward
# (tangent) derivative, $\operatorname{Step}$ and $\operatorname{MetaStep}$ one step of the inner
# optimizer and of the meta-optimizer.
#
# $$
# \begin{array}{l}
# \hline
# \textbf{Algorithm 1: } \text{Stochastic Meta-Descent} \\
# \hline
# \textbf{Input: } \alpha_0,\ \eta,\ \theta,\ T,\ M \qquad \textbf{Output: } \alpha \\
# \theta_0 \leftarrow \theta \\
# \alpha \leftarrow \alpha_0 \\
# \textbf{for } m \leftarrow 1 \dots M \textbf{ do} \\
# \quad u \leftarrow 0 \\
# \quad \textbf{for } t \leftarrow 1 \dots T \textbf{ do} \\
# \qquad X, y \leftarrow \operatorname{GetMiniBatch}() \\
# \qquad g \leftarrow \operatorname{BGrad}(L(X, y, \theta), \theta, 1) \\
# \qquad \theta_{\text{new}} \leftarrow \operatorname{Step}(\theta, g, \alpha) \\
# \qquad \alpha' \leftarrow g \cdot u \\
# \qquad u \leftarrow \operatorname{FGrad}(\theta_{\text{new}}, [\alpha, \theta], [1, u]) \\
# \qquad \theta \leftarrow \theta_{\text{new}} \\
# \quad \textbf{end for} \\
# \quad \alpha \leftarrow \operatorname{MetaStep}(\alpha, \alpha', \eta) \\
# \quad \theta \leftarrow \theta_0 \\
# \textbf{end for} \\
# \textbf{return } \alpha \\
# \hline
# \end{array}
# $$
#
# The line $\alpha' \leftarrow g \cdot u$ is Equation 8 and the $\operatorname{FGrad}$ line
# Equation 9. Every meta step restarts the lookahead from the same $\theta_0$: only $\alpha$
# moves (as in Section 3.2's offline experiment; the online one of Section 3.3 moves
# $\theta_0$ on between rounds of meta steps). `hypergrad.smd` implements it line by line:
#
# | Algorithm 1 | `shortbias_lib` |
# |---|---|
# | $\operatorname{GetMiniBatch}$ | `batches(m)`, giving the lookahead's and the meta-objective's minibatches (`lookahead_batches` draws them from a `batches.BatchSampler`) |
# | $\operatorname{BGrad}$ and $\operatorname{FGrad}$ | one pass of `grad_hvp` per step: the gradient and the Hessian-vector products $H_t u$ (`mlp_grad_hvp` for the MLP) |
# | $\operatorname{Step}$ | SGD with momentum, `convention="paper"` or `"heavy_ball"`, on a schedule $\alpha_t$ |
# | $\alpha' \leftarrow g \cdot u$ | Equation 8, once, after the $T$ steps: $\nabla L(w_T)^\top u_T$ on the meta-objective's minibatches |
# | $\operatorname{MetaStep}$ | Adam (or momentum) on the log-space coordinates, hypergradients clipped to $\pm 10$, then projected onto the bounds |
#
# One reading choice: as printed, $\alpha'$ is overwritten at every inner step (the last
# minibatch's loss at $\theta_{T-1}$); the text calls the meta-objective the loss after the $T$
# steps, so the library evaluates Equation 8 once at $w_T$, on minibatches of its own.

# %% tags=["remove-input"]
show_source(hypergrad.smd, "Source: `hypergrad.smd`, Algorithm 1")

# %% [markdown]
# ## Checks: forward mode against finite differences and reverse mode
#
# Each check runs a $T$-step lookahead from a random state (weights and a nonzero velocity)
# in float64, learning $(\log\frac{\alpha}{1-\mu}, \log(1-\mu), \log\beta)$ of an inverse-time
# schedule, and compares forward mode with central finite differences ($\epsilon = 10^{-6}$)
# and with reverse mode through the unrolled steps: *stochastic* lookahead (a fresh minibatch
# per step, the meta-objective on another) and *deterministic* (one minibatch throughout), in
# both conventions, on a small MLP (MNIST) and a narrow CNN (CIFAR-10) to keep it fast.

# %%
check_rows = smd_facts.check_cases(mnist, cifar, sizes, seed)
glue_facts(smd_facts.check_facts(check_rows))
Markdown(smd_facts.check_table(check_rows))

# %% [markdown]
# Over the {glue:text}`smd_n_checks` checks, the largest relative difference of forward mode to
# central finite differences is {glue:text}`smd_worst_fd:.1e` (the truncation and rounding
# error of the differences themselves) and to reverse mode {glue:text}`smd_worst_rev:.1e`
# (rounding only: both are exact derivatives). The test suite repeats these checks.
#
# ## Memory: measured at several lookahead lengths
#
# Peak resident memory above the level before the call (Linux's high-water mark, reset before
# each measurement) of one hypergradient of two hyperparameters on the MNIST MLP, float32,
# minibatches of 100, as the lookahead grows:

# %%
mem_state = training.init_state(models.mlp_init(torch.Generator().manual_seed(seed),
                                                sizes=sizes["mem_sizes"]))
mem_batches = list(zip(mnist.images[:1000].split(100), mnist.labels[:1000].split(100)))
mem_hyper = hyperparams.Hyperparameters(0.01, 0.9)
horizons = np.array(sizes["mem_T"])
fwd_mem, rev_mem = measure.memory_vs_horizon(models.mlp_apply, mem_state, mem_hyper,
                                             mem_batches, mem_batches[:1], horizons)
glue_facts(smd_facts.memory_facts(horizons, fwd_mem, rev_mem, sizes["mem_sizes"]))
Markdown(smd_facts.memory_table(horizons, fwd_mem, rev_mem))

# %% mystnb={"figure": {"caption": "Peak memory of one hypergradient against the lookahead length T: reverse mode through the unrolled steps grows linearly, forward mode stays flat.", "name": "fig-smd-memory"}}
fig, ax = plt.subplots(figsize=(5.5, 3.5))
ax.plot(horizons, rev_mem, "o-", label="reverse mode (through the unroll)")
ax.plot(horizons, fwd_mem, "s-", label="forward mode (tangent recursion)")
ax.set(xlabel="lookahead length T (steps)", ylabel="peak memory above baseline (MiB)")
ax.legend()
plt.show()

# %% [markdown]
# Reverse mode grows by {glue:text}`smd_rev_slope:.2f` MiB per step on the
# {glue:text}`smd_mem_sizes` MLP: a 20k-step lookahead would need about
# {glue:text}`smd_rev_20k_gib:.0f` GiB. Forward mode stays between
# {glue:text}`smd_fwd_min:.1f` and {glue:text}`smd_fwd_max:.1f` MiB whatever $T$.
# To see it stay flat over long lookaheads, the next cell runs forward mode for 100 and
# {glue:text}`smd_long_T` steps on a small MLP (784-32-10, minibatches of 20), and reverse mode
# at 50 and 200 steps for its slope.

# %%
small = training.init_state(models.mlp_init(torch.Generator().manual_seed(seed),
                                            sizes=(784, 32, 10)))
small_batches = list(zip(mnist.images[:200].split(20), mnist.labels[:200].split(20)))
long_mem = {}
for T in (100, sizes["long_T"]):
    look = [small_batches[t % len(small_batches)] for t in range(T)]  # references only
    long_mem[T] = measure.peak_rss_mib(hypergrad.hypergradient, models.mlp_apply, small,
                                       mem_hyper, look, small_batches[:1])[1]
_, small_rev = measure.memory_vs_horizon(models.mlp_apply, small, mem_hyper,
                                         small_batches, small_batches[:1], [50, 200])
rev_per_step = (small_rev[1] - small_rev[0]) / 150
glue_facts(smd_facts.long_lookahead_facts(long_mem, rev_per_step, sizes["long_T"]))
long_mem

# %% [markdown]
# Forward mode needed {glue:text}`smd_long_short:.2f` MiB for 100 steps and
# {glue:text}`smd_long_long:.2f` MiB for {glue:text}`smd_long_T` steps; only the record of
# per-step losses grows with $T$ by design (8 bytes a step, {glue:text}`smd_loss_log:.2f` MiB
# here). Reverse mode on this small MLP would grow by
# {glue:text}`smd_small_slope:.2f` MiB a step, {glue:text}`smd_small_rev_long:.0f` MiB at
# {glue:text}`smd_long_T` steps.
#
# ## Time: a hypergradient step against a plain step
#
# The cost of forward mode is one Hessian-vector product per step and per hyperparameter.
# For the MLP the library computes the gradient and the Hessian-vector products in one pass,
# writing out Pearlmutter's $\mathcal{R}$-operator (forward tangents through the layers, then
# the tangent of the backward pass; ReLU has no curvature, so its masks are reused). Any
# other model falls back on double backward through autograd.

# %% tags=["remove-input"]
show_source(hvp.mlp_grad_hvp, "Source: `hvp.mlp_grad_hvp`, the gradient and the Hessian-vector products in one pass")

# %% [markdown]
# Seconds per step of the MNIST MLP, minibatch 100, one CPU thread's process time (best of
# interleaved repeats):

# %%
cost_state = training.init_state(models.mlp_init(torch.Generator().manual_seed(seed),
                                                 device=dev))
on_device = [(x.to(dev), y.to(dev)) for x, y in mem_batches]
costs = measure.step_costs(models.mlp_apply, cost_state, on_device,
                           steps=sizes["cost_steps"], repeats=sizes["cost_repeats"])
glue_facts(smd_facts.cost_facts(costs))
Markdown(smd_facts.cost_table(costs))

# %% [markdown]
# A hypergradient of one hyperparameter costs {glue:text}`smd_ratio1:.2f` plain steps, two
# hyperparameters {glue:text}`smd_ratio2:.2f`. Multiply-adds explain it: the first layer
# (784x100) dominates, and its Hessian-vector product needs one extra product forward and
# one backward, so a step costs about two plain ones on a CPU; the second hyperparameter adds
# {glue:text}`smd_ratio_increment:.2f` plain steps here. (The `smoke` profile's timings are
# too short to mean much; the benchmark prints the same ratios over longer runs.)
#
# ## Algorithm 1 at work
#
# Finally a short run of Algorithm 1: an MLP warm-started by SGD with momentum ($\alpha = 0.1$,
# $\mu = 0.9$), then meta steps of Adam on the log effective rate and $\log(1-\mu)$ from
# $\alpha = 0.01$, $\mu = 0.9$ (effective rate 0.1) with a 5-step stochastic or deterministic
# lookahead, restarted from the same weights each time (meta learning rate 0.03, not the
# paper's 0.01, for a visible movement in few meta steps).

# %% mystnb={"figure": {"caption": "Effective learning rate alpha/(1-mu) over the meta steps of Algorithm 1 from the same warm-started MLP, with stochastic and deterministic 5-step lookahead.", "name": "fig-smd-trajectory"}}
sampler = batches.BatchSampler.from_dataset(mnist, 100, seed=seed, device=dev)
warm = training.train(models.mlp_apply,
                      models.mlp_init(torch.Generator().manual_seed(seed), device=dev),
                      sampler, sizes["warm"], 0.1, 0.9)
start = hyperparams.Hyperparameters(0.01, 0.9, learn=("lr", "momentum"))
runs = {}
for kind in ("stochastic", "deterministic"):
    meta_sampler = batches.BatchSampler.from_dataset(mnist, 100, seed=seed + 1,
                                                     device=dev)
    meta_batches = hypergrad.lookahead_batches(meta_sampler, 5,
                                               deterministic=(kind == "deterministic"))
    runs[kind] = hypergrad.smd(models.mlp_apply, warm.state, start, horizon=5,
                               meta_steps=sizes["meta_steps"], batches=meta_batches,
                               optimizer=meta_optim.Adam(0.03))
glue_facts(smd_facts.run_facts(runs, start.effective_lr, sizes["meta_steps"]))
fig, ax = plt.subplots(figsize=(5.5, 3.5))
for kind, r in runs.items():
    ax.plot(r.lrs / (1 - r.momenta), label=f"{kind} lookahead")
ax.set(yscale="log", xlabel="meta step", ylabel="effective learning rate")
ax.legend()
plt.show()

# %% [markdown]
# After {glue:text}`smd_n_meta` meta steps the effective learning rate is
# {glue:text}`smd_stochastic_eff:.3g` ($\mu$ = {glue:text}`smd_stochastic_mu:.3f`) with stochastic
# lookahead and {glue:text}`smd_deterministic_eff:.3g` ($\mu$ = {glue:text}`smd_deterministic_mu:.3f`)
# with deterministic lookahead, both starting from 0.1: it {glue:text}`smd_stochastic_direction`
# under stochastic lookahead and {glue:text}`smd_deterministic_direction` under deterministic
# lookahead. So soon after the warm start both meta-objectives may favour larger steps; the
# stochastic objective's downward pull shows later, in the online experiment of Section 3.3.
#
# ## Exercises
#
# **1. Equations 8 and 9 by hand.** Take one weight and the same deterministic loss at every
# step, $\ell(w) = \tfrac12 h w^2$ with $h > 0$, and plain SGD from $w_0 \ne 0$ with learning
# rate $\alpha$. Run the recursion (9) from $u_0 = 0$ and show that after $T$ steps
# $u_T = \partial w_T / \partial \alpha = -T h (1 - \alpha h)^{T-1} w_0$. What is the sign of the
# hypergradient $\partial \ell(w_T) / \partial \alpha$ for $0 < \alpha < 2/h$, and where does SMD
# settle for a lookahead of $T = 1$, and of any $T$?

# %% tags=["solution", "hide-cell"]
def quadratic_hypergradient(alpha, h, w0, T):
    """(w_T, u_T, d l(w_T) / d alpha) for plain SGD on l(w) = h w^2 / 2."""
    w, u = w0, 0.0
    for _ in range(T):
        g = h * w
        u = u - g - alpha * h * u  # Equation 9, with H = h and the old u
        w = w - alpha * g
    return w, u, h * w * u         # Equation 8 at the end


h_ex, w0_ex = 2.0, 1.5
for T_ex in (1, 2, 5):
    for a_ex in np.linspace(0.02, 0.98, 13) / h_ex * 2:
        w_T, u_T, dl = quadratic_hypergradient(a_ex, h_ex, w0_ex, T_ex)
        u_closed = -T_ex * h_ex * (1 - a_ex * h_ex) ** (T_ex - 1) * w0_ex
        assert math.isclose(u_T, u_closed, rel_tol=1e-12, abs_tol=1e-15)
        assert np.sign(dl) == np.sign(a_ex * h_ex - 1)  # negative below alpha = 1/h
        up, down = (0.5 * h_ex * quadratic_hypergradient(a, h_ex, w0_ex, T_ex)[0] ** 2
                    for a in (a_ex + 1e-6, a_ex - 1e-6))
        assert math.isclose(dl, (up - down) / 2e-6, rel_tol=1e-5, abs_tol=1e-8)
print("u_T and the sign of the hypergradient check out for T = 1, 2, 5")

# %% [markdown] tags=["solution"]
# ```{admonition} Solution
# :class: dropdown
# Here $g_t = h w_{t-1}$ and $H_t = h$, so $w_T = (1 - \alpha h)^T w_0$, and Equation 9 reads
# $u_t = (1 - \alpha h) u_{t-1} - h w_{t-1}$. By induction, $u_t = -t h (1 - \alpha h)^{t-1} w_0$:
# $(1 - \alpha h)\,[-(t-1) h (1-\alpha h)^{t-2} w_0] - h (1-\alpha h)^{t-1} w_0 = -t h (1-\alpha h)^{t-1} w_0$,
# which is also the derivative of the closed form. Equation 8 at the end gives
# $\partial \ell(w_T) / \partial \alpha = h\, w_T u_T = -T h^2 (1 - \alpha h)^{2T-1} w_0^2$: an odd
# power, so the hypergradient is negative for $\alpha < 1/h$ (a larger step helps), zero at
# $\alpha = 1/h$ and positive beyond. SMD settles at $\alpha = 1/h$ for every $T$: the step
# that lands on the minimum is best for any number of steps. There is no short-horizon bias
# without noise and several curvatures (Section 2).
# ```

# %% [markdown]
# **2. Why log space?** The library learns $u = \log\frac{\alpha}{1-\mu}$ rather than $\alpha$
# itself. With $\mu$ fixed, how is $\partial L / \partial u$ related to $\partial L / \partial \alpha$?
# Check it with `hypergrad.hypergradient` on a short lookahead of the MLP, once with
# `Hyperparameters(0.05, 0.9, learn=("lr",))` and once with the same and `space="raw"`. What
# does a meta step of Adam, whose steps are about as large as its learning rate whatever the
# gradient's scale, do to $\alpha$ in each space?

# %% tags=["solution", "hide-cell"]
ex_params = models.mlp_init(torch.Generator().manual_seed(seed),
                            sizes=sizes["mlp_check"], init_std=0.1, dtype=torch.float64)
ex_x, ex_T = mnist.images.double(), 3
ex_look = list(zip(ex_x[:10 * ex_T].split(10), mnist.labels[:10 * ex_T].split(10)))
ex_eval = [(ex_x[-10:], mnist.labels[-10:])]
ex_hypers = {space: hyperparams.Hyperparameters(0.05, 0.9, learn=("lr",), space=space)
             for space in ("log", "raw")}
ex_grads = {space: hypergrad.hypergradient(models.mlp_apply, ex_params, hyper, ex_look,
                                           ex_eval).grad[0]
            for space, hyper in ex_hypers.items()}
ex_ratio = ex_grads["log"] / ex_grads["raw"]
assert math.isclose(ex_ratio, 0.05, rel_tol=1e-9), ex_ratio  # alpha_0 = 0.05
glue_facts({"smd_ex_log_ratio": float(ex_ratio), "smd_ex_log_T": ex_T})
ex_grads

# %% [markdown] tags=["solution"]
# ```{admonition} Solution
# :class: dropdown
# At fixed $\mu$, $\alpha = (1-\mu) e^{u}$, so $\partial\alpha / \partial u = \alpha$ and
# $\partial L / \partial u = \alpha\, \partial L / \partial \alpha$: the log-space hypergradient is the
# raw one times $\alpha_0 = 0.05$ (the run gives a ratio of {glue:text}`smd_ex_log_ratio:.6f`
# on a {glue:text}`smd_ex_log_T`-step lookahead, in float64). A step of Adam of size $\eta$ in
# $u$ multiplies $\alpha$ by about $e^{\pm\eta}$: a *relative* change, the same at
# $\alpha = 10^{-3}$ as at $10^{-1}$, and $\alpha$ stays positive. In raw space the same step
# changes $\alpha$ by $\pm\eta$: negligible for a large rate, and for a rate below $\eta$ a
# step that can make it negative.
# ```

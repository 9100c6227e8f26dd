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
# builds that engine (`shortbias_lib.hypergrad`, `shortbias_lib.training`,
# `shortbias_lib.models`), checks its hypergradients against two independent computations,
# and measures what forward mode costs in time and memory. The offline and online experiments
# of Sections 3.2 and 3.3 use it.

# %% tags=["parameters", "remove-cell"]
profile = "quick"
device = "auto"
seed = 0
data_root = None
results = None

# %% tags=["remove-input"]
from shortbias_lib.notebook import setup

context = setup(profile, device, seed, data_root, results, threads=1)  # steadier timings on a shared machine

# %% tags=["remove-cell"]
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from myst_nb import glue

from shortbias_lib import batches, data, hvp, hypergrad, hyperparams, measure, meta_optim, models, reference, training
from shortbias_lib.notebook import show_source
from shortbias_lib.plotting import unrolled_sgd_graph
from shortbias_lib.profiles import pick
from shortbias_lib.report import markdown_table


dev = context.device
sizes = pick(profile, {
    "smoke": dict(n_train=200, mlp_check=(784, 8, 8, 10), cnn_check=dict(channels=(2, 2, 4), hidden=8),
                  check_T=(1, 3), cnn_T=(2,), check_batch=5, mem_T=(5, 10, 20), mem_sizes=(784, 32, 10),
                  cost_steps=5, cost_repeats=1, warm=10, meta_steps=5, long_T=1000),
    "quick": dict(n_train=2000, mlp_check=(784, 16, 16, 10), cnn_check=dict(channels=(4, 4, 8), hidden=16),
                  check_T=(1, 5, 20), cnn_T=(1, 5), check_batch=10, mem_T=(10, 25, 50, 100, 200),
                  mem_sizes=(784, 100, 100, 10), cost_steps=20, cost_repeats=3, warm=50, meta_steps=300,
                  long_T=10000),
    "paper": dict(n_train=60000, mlp_check=(784, 100, 100, 10), cnn_check=dict(channels=(32, 32, 64), hidden=100),
                  check_T=(1, 5, 20, 50), cnn_T=(1, 5), check_batch=100, mem_T=(10, 50, 100, 200, 400),
                  mem_sizes=(784, 100, 100, 10), cost_steps=100, cost_repeats=5, warm=50, meta_steps=1000,
                  long_T=10000),
})
mnist = data.load("mnist", train=True, root=data_root, limit=sizes["n_train"])
cifar = data.load("cifar10", train=True, root=data_root, limit=64)

# %% [markdown]
# ## Training unrolled as a computation graph
#
# SMD rests on one observation (Section 3.1): a run of a gradient-based optimizer is itself a
# differentiable computation. Unroll $T$ steps of SGD, $\theta_t = \theta_{t-1} - \alpha g_t$
# with $g_t$ the gradient of the loss on the minibatch $(X_t, y_t)$ at $\theta_{t-1}$, and the
# learning rate $\alpha$ becomes one more input of the graph, feeding every step; the loss
# $L(\theta_T)$ after the last step is a function of it like any other, and automatic
# differentiation gives $\partial L(\theta_T) / \partial \alpha$, the *hypergradient*. The
# paper draws this as its Figure 4; the figure below is our drawing of the same graph.

# %% mystnb={"figure": {"caption": "SGD in the form of a computation graph (after the paper's Figure 4). Each step takes the weights and a minibatch, computes the gradient, and updates the weights with the learning rate alpha, a single input shared by all steps; the meta-objective L is measured after the last step, and the hypergradient (dashed) is its derivative with respect to alpha through the whole graph.", "name": "fig-smd-graph"}} tags=["hide-input"]
ax = unrolled_sgd_graph(steps=2)
plt.show()

# %% [markdown]
# Every path from $\alpha$ to $L(\theta_T)$ passes through the weights: a change of $\alpha$
# at step 1 changes $\theta_1$, hence the gradient $g_2$ and every later step. The
# hypergradient sums all of these paths, which is what the forward-mode recursion below does
# one step at a time.
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
# once $\alpha_t$ changes over time they differ, because the paper's velocity remembers the
# old learning rates and the code's rescales the whole velocity by the new one. The library
# has both (`convention="paper"` or `"heavy_ball"`); every experiment says which it uses.
# Learning rates follow a schedule: constant, inverse-time decay
# $\alpha_t = \alpha_0 / (1 + t/K)^\beta$ (Section 3.2) or exponential decay to a target
# (Section 3.3).
#
# The hyperparameters are meta-optimized in log space, as in the paper and the code: the
# logarithm of the *effective* learning rate $\alpha/(1-\mu)$, of $1 - \mu$, and of the decay
# exponent $\beta$. Raw hypergradients are clipped to $\pm 10$ and the coordinates kept in
# the authors' bounds: effective learning rate in $[10^{-4}, 10]$, $1-\mu$ in $[10^{-4}, 1]$,
# $\beta$ in $[10^{-4}, 10^3]$.
#
# The networks are those of Section 3: the MNIST MLP 784-100-100-10 with ReLU, and the
# CIFAR-10 CNN with three convolutions of 32, 32 and 64 channels ('same' padding), each
# followed by 2x2 max-pooling with stride 2 and a ReLU, then a fully connected layer of 100
# units. Two details differ between the paper and the authors' code, and the library exposes
# both: the **filter size** (paper 3x3, code 5x5: `cnn_init(filter_size=...)`) and the
# **MLP's initial weight scale** (paper N(0, 0.1²), code N(0, 0.05²): `mlp_init(init_std=...)`).
# We follow the paper by default.
#
# Both conventions of the update are `training.momentum_step` (its `inplace=True` form is the
# fast path of training):

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
# The derivatives $\dot\alpha_t$ and $\dot\mu$ of each coordinate are
# `Hyperparameters.at`; the recursion itself is one step function per convention,
# `hypergrad.paper_tangent_step` and `hypergrad.heavy_ball_tangent_step`, and the lookahead
# with Equation 8 at the end is `hypergrad.hypergradient` (Equation 9 is its case $\mu = 0$):

# %% tags=["remove-input"]
show_source(hyperparams.Hyperparameters.at,
            "Source: `Hyperparameters.at`, the schedule and its derivatives in each coordinate")
show_source(hypergrad.paper_tangent_step,
            "Source: `hypergrad.paper_tangent_step`, Equation 9 with momentum, paper convention")
show_source(hypergrad.heavy_ball_tangent_step,
            "Source: `hypergrad.heavy_ball_tangent_step`, Equation 9 with momentum, heavy-ball convention")
show_source(hypergrad.hypergradient,
            "Source: `hypergrad.hypergradient`, the lookahead and Equation 8 (forward mode)")

# %% [markdown]
# **Forward versus reverse mode.** The same derivative can be had by reverse mode:
# backpropagate $L(w_T)$ through all $T$ steps of the unrolled optimization. Reverse mode
# costs one backward pass whatever the number of hyperparameters, but it must keep every
# intermediate state (and the graph of every gradient computation) of the $T$ steps, so its
# memory grows linearly in $T$. Forward mode carries one tangent per hyperparameter
# alongside the weights and discards each step once done: its memory does not depend on $T$,
# and its time is one Hessian-vector product per step and per hyperparameter. With two or
# three hyperparameters and lookaheads of thousands of steps (Section 3.2 goes to 20k),
# forward mode is the one that fits. We measure both below rather than assert it.

# %% [markdown]
# ## Algorithm 1: stochastic meta-descent
#
# The paper's Algorithm 1 puts the pieces together. $\alpha$ stands for the hyperparameters
# being learned, $\theta$ for the state of the inner optimizer (weights and velocities), $u$
# for the tangent $\partial\theta / \partial\alpha$, $\eta$ for the meta-optimizer's own
# hyperparameters, $T$ for the lookahead and $M$ for the number of meta steps.
# $\operatorname{BGrad}(y, x, dy)$ is a backward (reverse-mode) gradient, here the gradient of
# the minibatch loss with respect to $\theta$; $\operatorname{FGrad}(y, x, dx)$ a forward
# (tangent) derivative, here the new tangent $u$ carried through the step; $\operatorname{Step}$
# and $\operatorname{MetaStep}$ are one step of the inner optimizer and of the meta-optimizer.
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
# Equation 9. Every meta step restarts the lookahead from the same $\theta_0$: the weights
# do not move during meta-optimization, only $\alpha$ does (the offline experiment of
# Section 3.2 runs it this way from a warm start; the online one of Section 3.3 moves
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
# One reading choice: as printed, $\alpha'$ is overwritten at every inner step, so the meta
# step would use the derivative of the *last lookahead minibatch's* loss at $\theta_{T-1}$.
# The text describes the meta-objective as the loss after the $T$ steps, so the library
# evaluates Equation 8 once at $w_T$, on minibatches of its own (fresh ones for stochastic
# lookahead, the repeated one for deterministic lookahead).

# %% tags=["remove-input"]
show_source(hypergrad.smd, "Source: `hypergrad.smd`, Algorithm 1")

# %% [markdown]
# ## Checks: forward mode against finite differences and reverse mode
#
# Each row runs a lookahead of $T$ steps from a random state (weights and a nonzero
# velocity) in float64, learning all three coordinates (log effective learning rate,
# $\log(1-\mu)$, $\log\beta$ of an inverse-time schedule), and compares the forward-mode
# hypergradient with central finite differences ($\epsilon = 10^{-6}$ in each coordinate)
# and with reverse mode through the unrolled steps. *Stochastic* lookahead uses a fresh
# minibatch per step and evaluates the meta-objective on another one; *deterministic*
# lookahead repeats one minibatch and evaluates on it. Small networks keep this fast: an
# MLP of the listed sizes on MNIST and a narrow version of the CNN on CIFAR-10 images.

# %%
def check_rows():
    gen = torch.Generator().manual_seed(seed)
    B = sizes["check_batch"]
    x_m = mnist.images.double()
    x_c = cifar.images.double()
    mlp_params = models.mlp_init(gen, sizes=sizes["mlp_check"], init_std=0.1, dtype=torch.float64)
    cnn_params = models.cnn_init(gen, init_std=0.1, dtype=torch.float64, **sizes["cnn_check"])
    hyper = hyperparams.Hyperparameters(0.05, 0.9, beta=1.0, K=10, learn=("lr", "momentum", "beta"))
    cases = [("MLP", models.mlp_apply, mlp_params, x_m, mnist.labels, T) for T in sizes["check_T"]]
    cases += [("CNN", models.cnn_apply, cnn_params, x_c, cifar.labels, T) for T in sizes["cnn_T"]]
    rows = []
    for name, apply, params, x, y, T in cases:
        velocity = tuple(0.01 * torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params)
        state = training.init_state(params, velocity, step=5)
        for lookahead in ("stochastic", "deterministic"):
            n = len(y)
            if lookahead == "stochastic":
                look = [(x[(i * B) % n:(i * B) % n + B], y[(i * B) % n:(i * B) % n + B]) for i in range(T)]
                evaluation = [(x[n - B:], y[n - B:])]
            else:
                look = [(x[:B], y[:B])] * T
                evaluation = look[:1]
            for convention in ("paper", "heavy_ball"):
                out = reference.compare_hypergradients(apply, state, hyper, look, evaluation, convention)
                rows.append(dict(model=name, T=T, lookahead=lookahead, convention=convention, **out))
    return rows


rows = check_rows()

# %% tags=["remove-input"]
fmt = lambda v: "(" + ", ".join(f"{a:+.4e}" for a in v) + ")"  # noqa: E731
display(Markdown(markdown_table(
    ["model", "T", "lookahead", "convention", "forward mode", "finite differences", "rel. diff. to FD",
     "rel. diff. to reverse"],
    [(r["model"], r["T"], r["lookahead"], r["convention"], fmt(r["forward"]), fmt(r["finite_difference"]),
      f"{r['rel_err_fd']:.1e}", f"{r['rel_err_reverse']:.1e}") for r in rows])))
worst_fd = max(r["rel_err_fd"] for r in rows)
worst_rev = max(r["rel_err_reverse"] for r in rows)
glue("smd_worst_fd", float(worst_fd), display=False)
glue("smd_worst_rev", float(worst_rev), display=False)
glue("smd_n_checks", len(rows), display=False)

# %% [markdown]
# Hypergradients are listed as (log effective learning rate, $\log(1-\mu)$, $\log\beta$).
# Over the {glue:text}`smd_n_checks` checks, the largest relative difference of forward mode to
# central finite differences is {glue:text}`smd_worst_fd:.1e` (the truncation and rounding
# error of the differences themselves) and to reverse mode {glue:text}`smd_worst_rev:.1e`
# (rounding only: both are exact derivatives). The test suite repeats these checks, plus the
# plain-SGD case of Equations 8-9, on every run.

# %% [markdown]
# ## Memory: measured at several lookahead lengths
#
# Peak resident memory of the process above its level before the call (Linux's high-water
# mark, reset before each measurement), for one hypergradient of two hyperparameters on the
# MNIST MLP in float32 with minibatches of 100, as the lookahead grows.

# %%
mem_params = models.mlp_init(torch.Generator().manual_seed(seed), sizes=sizes["mem_sizes"])
mem_batches = [(mnist.images[i:i + 100], mnist.labels[i:i + 100]) for i in range(0, min(len(mnist), 1000), 100)]
mem_hyper = hyperparams.Hyperparameters(0.01, 0.9)
horizons = np.array(sizes["mem_T"])
fwd_mem, rev_mem = measure.memory_vs_horizon(models.mlp_apply, training.init_state(mem_params), mem_hyper,
                                               mem_batches, mem_batches[:1], horizons)
slope = np.polyfit(horizons, rev_mem, 1)[0]  # MiB per lookahead step

# %% tags=["remove-input"]
glue("smd_rev_slope", float(slope), display=False)
glue("smd_rev_20k_gib", float(slope * 20000 / 1024), display=False)
glue("smd_fwd_max", float(fwd_mem.max()), display=False)
glue("smd_fwd_min", float(fwd_mem.min()), display=False)
glue("smd_mem_sizes", "-".join(map(str, sizes["mem_sizes"])), display=False)
display(Markdown(markdown_table(["T", "reverse mode (MiB)", "forward mode (MiB)"],
                                [(T, f"{r:.1f}", f"{f:.1f}") for T, r, f in zip(horizons, rev_mem, fwd_mem)])))

# %% mystnb={"figure": {"caption": "Peak memory of one hypergradient against the lookahead length T: reverse mode through the unrolled steps grows linearly, forward mode stays flat.", "name": "fig-smd-memory"}}
fig, ax = plt.subplots(figsize=(5.5, 3.5))
ax.plot(horizons, rev_mem, "o-", label="reverse mode (through the unroll)")
ax.plot(horizons, fwd_mem, "s-", label="forward mode (tangent recursion)")
ax.set_xlabel("lookahead length T (steps)")
ax.set_ylabel("peak memory above baseline (MiB)")
ax.legend()
plt.show()

# %% [markdown]
# Reverse mode grows by {glue:text}`smd_rev_slope:.2f` MiB per step on the
# {glue:text}`smd_mem_sizes` MLP: a 20k-step lookahead would need about
# {glue:text}`smd_rev_20k_gib:.0f` GiB. Forward mode stays between
# {glue:text}`smd_fwd_min:.1f` and {glue:text}`smd_fwd_max:.1f` MiB whatever $T$.
# To see that it stays flat over really long lookaheads, the next cell runs forward mode for
# 100 and for {glue:text}`smd_long_T` steps on a smaller MLP (784-32-10, minibatches of 20,
# so that the long run takes seconds).

# %%
small = training.init_state(models.mlp_init(torch.Generator().manual_seed(seed), sizes=(784, 32, 10)))
small_batches = [(mnist.images[i:i + 20], mnist.labels[i:i + 20]) for i in range(0, 200, 20)]
long_mem = {}
for T in (100, sizes["long_T"]):
    look = [small_batches[t % len(small_batches)] for t in range(T)]  # references only
    long_mem[T] = measure.peak_rss_mib(hypergrad.hypergradient, models.mlp_apply, small, mem_hyper,
                                         look, small_batches[:1])[1]
_, small_rev = measure.memory_vs_horizon(models.mlp_apply, small, mem_hyper, small_batches,
                                           small_batches[:1], [50, 200])
small_slope = (small_rev[1] - small_rev[0]) / 150

# %% tags=["remove-input"]
glue("smd_long_T", f"{sizes['long_T']:,}", display=False)
glue("smd_long_short", float(long_mem[100]), display=False)
glue("smd_long_long", float(long_mem[sizes["long_T"]]), display=False)
glue("smd_loss_log", float(8 * sizes["long_T"] / 2 ** 20), display=False)
glue("smd_small_slope", float(small_slope), display=False)
glue("smd_small_rev_long", float(small_slope * sizes["long_T"]), display=False)
display(Markdown(markdown_table(["T", "forward mode (MiB)"], [(f"{T:,}", f"{m:.2f}") for T, m in long_mem.items()])))

# %% [markdown]
# Forward mode needed {glue:text}`smd_long_short:.2f` MiB for 100 steps and
# {glue:text}`smd_long_long:.2f` MiB for {glue:text}`smd_long_T` steps. The only array that
# grows with $T$ by design is the record of per-step losses (8 bytes a step,
# {glue:text}`smd_loss_log:.2f` MiB here); the difference measured is of that order, a
# fraction of a MiB, with no trend in the state itself. Reverse mode on this small MLP would
# grow by {glue:text}`smd_small_slope:.2f` MiB a step, {glue:text}`smd_small_rev_long:.0f` MiB
# at {glue:text}`smd_long_T` steps.

# %% [markdown]
# ## Time: a hypergradient step against a plain step
#
# The cost of forward mode is one Hessian-vector product per step and per hyperparameter.
# For the MLP the library computes the gradient and the Hessian-vector products in one pass,
# writing out Pearlmutter's $\mathcal{R}$-operator (forward tangents through the layers, then
# the tangent of the backward pass; ReLU has no curvature, so its masks are reused). Any
# other model falls back on double backward through autograd.

# %% tags=["remove-input"]
show_source(hvp.mlp_grad_hvp,
            "Source: `hvp.mlp_grad_hvp`, the gradient and the Hessian-vector products of Equation 9 in one pass")

# %% [markdown]
# Seconds per step of the MNIST MLP, minibatch 100, one CPU thread's process time (best of
# interleaved repeats):

# %%
cost_params = models.mlp_init(torch.Generator().manual_seed(seed), device=dev)
cost_batches = [(x.to(dev), y.to(dev)) for x, y in mem_batches]
costs = measure.step_costs(models.mlp_apply, training.init_state(cost_params), cost_batches,
                             steps=sizes["cost_steps"], repeats=sizes["cost_repeats"])

# %% tags=["remove-input"]
labels_ = {"plain": "plain SGD-momentum step", "lr": "hypergradient, 1 hyperparameter",
           "lr+momentum": "hypergradient, 2 hyperparameters",
           "lr, double backward": "hypergradient, 1 hyperparameter, double backward"}
display(Markdown(markdown_table(["step", "ms", "ratio to plain"],
                                [(labels_[k], f"{1e3 * v:.3f}", f"{v / costs['plain']:.2f}")
                                 for k, v in costs.items()])))
glue("smd_ratio1", float(costs["lr"] / costs["plain"]), display=False)
glue("smd_ratio2", float(costs["lr+momentum"] / costs["plain"]), display=False)
glue("smd_ratio_increment", float((costs["lr+momentum"] - costs["lr"]) / costs["plain"]), display=False)

# %% [markdown]
# A hypergradient of one hyperparameter costs {glue:text}`smd_ratio1:.2f` plain steps, two
# hyperparameters {glue:text}`smd_ratio2:.2f`. Counting multiply-adds explains the numbers:
# the first layer (784x100) dominates, and its Hessian-vector product needs one extra
# product forward and one backward, so on a CPU, where multiply-adds dominate, the step costs
# about twice a plain one, and each further hyperparameter adds about one plain step more
# ({glue:text}`smd_ratio_increment:.2f` here). (Timings of the `smoke` profile are too short
# to mean much; the benchmark prints the same ratios over longer runs.)

# %% [markdown]
# ## Algorithm 1 at work
#
# Finally a short run of Algorithm 1, with Section 3.2's warm start and Section 3.3's 5-step
# lookahead: an MLP warm-started by SGD with momentum ($\alpha = 0.1$, $\mu = 0.9$), then meta steps of Adam on the log
# effective learning rate and $\log(1-\mu)$, from $\alpha = 0.01$, $\mu = 0.9$, with a 5-step
# lookahead restarted from the same weights each time. With *stochastic* lookahead the
# meta-objective is measured on 5 fresh minibatches; with *deterministic* lookahead one
# minibatch is repeated 5 times and the meta-objective is measured on it. (For a visible
# movement in few meta steps we use a meta learning rate of 0.03, not the paper's 0.01.)

# %%
gen = torch.Generator().manual_seed(seed)
smd_params = models.mlp_init(gen, device=dev)
sampler = batches.BatchSampler.from_dataset(mnist, 100, seed=seed, device=dev)
warm = training.train(models.mlp_apply, smd_params, sampler, sizes["warm"], 0.1, 0.9)
start = hyperparams.Hyperparameters(0.01, 0.9, learn=("lr", "momentum"))
runs = {}
for kind in ("stochastic", "deterministic"):
    meta_sampler = batches.BatchSampler.from_dataset(mnist, 100, seed=seed + 1, device=dev)
    meta_batches = hypergrad.lookahead_batches(meta_sampler, 5, deterministic=(kind == "deterministic"))
    runs[kind] = hypergrad.smd(models.mlp_apply, warm.state, start, horizon=5, meta_steps=sizes["meta_steps"],
                               batches=meta_batches, optimizer=meta_optim.Adam(0.03))

# %% tags=["remove-cell"]
glue("smd_n_meta", sizes["meta_steps"], display=False)
for kind, r in runs.items():
    eff = r.lrs[-1] / (1 - r.momenta[-1])
    glue(f"smd_{kind}_eff", float(eff), display=False)
    glue(f"smd_{kind}_mu", float(r.momenta[-1]), display=False)
    glue(f"smd_{kind}_diverged", "diverged" if r.diverged else "did not diverge", display=False)
    glue(f"smd_{kind}_direction", "rose" if eff > 0.1 else "fell", display=False)

# %% mystnb={"figure": {"caption": "Effective learning rate alpha/(1-mu) over the meta steps of Algorithm 1 from the same warm-started MLP, with stochastic and deterministic 5-step lookahead.", "name": "fig-smd-trajectory"}}
fig, ax = plt.subplots(figsize=(5.5, 3.5))
for kind, r in runs.items():
    ax.plot(r.lrs / (1 - r.momenta), label=f"{kind} lookahead")
ax.set_yscale("log")
ax.set_xlabel("meta step")
ax.set_ylabel("effective learning rate")
ax.legend()
plt.show()

# %% [markdown]
# After {glue:text}`smd_n_meta` meta steps the effective learning rate is
# {glue:text}`smd_stochastic_eff:.3g` ($\mu$ = {glue:text}`smd_stochastic_mu:.3f`) with stochastic
# lookahead and {glue:text}`smd_deterministic_eff:.3g` ($\mu$ = {glue:text}`smd_deterministic_mu:.3f`)
# with deterministic lookahead, both starting from 0.1: it {glue:text}`smd_stochastic_direction`
# under stochastic lookahead and {glue:text}`smd_deterministic_direction` under deterministic
# lookahead. So soon after the warm start the loss is still high and both meta-objectives
# may favour larger steps; the stochastic objective's downward pull shows later in training.
# These few meta steps only show the direction each meta-objective pulls in; the online experiment of Section 3.3 runs the
# full schedule (100 meta steps every 10 training steps for 25k steps) and shows where that
# leads.

# %% [markdown]
# ## Exercises
#
# **1. Equations 8 and 9 by hand.** Take one weight and the same deterministic loss at every
# step, $\ell(w) = \tfrac12 h w^2$ with $h > 0$, and plain SGD from $w_0 \ne 0$ with learning
# rate $\alpha$. Run the recursion (9) from $u_0 = 0$ and show that after $T$ steps
# $u_T = \partial w_T / \partial \alpha = -T h (1 - \alpha h)^{T-1} w_0$. What is the sign of the
# hypergradient $\partial \ell(w_T) / \partial \alpha$ for $0 < \alpha < 2/h$, and where does SMD
# settle for a lookahead of $T = 1$, and of any $T$?
#
# ```{admonition} Solution
# :class: dropdown
# Here $g_t = h w_{t-1}$ and $H_t = h$, so $w_t = (1 - \alpha h) w_{t-1}$, i.e.
# $w_T = (1 - \alpha h)^T w_0$, and Equation 9 reads $u_t = (1 - \alpha h) u_{t-1} - h w_{t-1}$.
# By induction, $u_t = -t h (1 - \alpha h)^{t-1} w_0$:
# $(1 - \alpha h)\,[-(t-1) h (1-\alpha h)^{t-2} w_0] - h (1-\alpha h)^{t-1} w_0 = -t h (1-\alpha h)^{t-1} w_0$,
# which is also the derivative of the closed form. Equation 8 at the end gives
# $\partial \ell(w_T) / \partial \alpha = h\, w_T u_T = -T h^2 (1 - \alpha h)^{2T-1} w_0^2$: an odd
# power, so the hypergradient is negative for $\alpha < 1/h$ (a larger step helps), zero at
# $\alpha = 1/h$ and positive for $1/h < \alpha < 2/h$. SMD settles at $\alpha = 1/h$ for
# $T = 1$ and for every $T$: on a deterministic one-dimensional quadratic the best step for
# one step, which lands on the minimum, is the best for any number of steps. There is no
# short-horizon bias without noise and several curvatures (Section 2). A hidden cell runs
# the recursion and checks the closed form and the sign for $T$ = 1, 2 and 5.
# ```
#
# **2. Why log space?** The library learns $u = \log\frac{\alpha}{1-\mu}$ rather than $\alpha$
# itself. With $\mu$ fixed, how is $\partial L / \partial u$ related to $\partial L / \partial \alpha$?
# Check it with `hypergrad.hypergradient` on a short lookahead of the MLP, once with
# `Hyperparameters(0.05, 0.9, learn=("lr",))` and once with the same and `space="raw"`. What
# does a meta step of Adam, whose steps are about as large as its learning rate whatever the
# gradient's scale, do to $\alpha$ in each space?
#
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

# %% tags=["remove-cell"]
# Exercise 1: Equations 8 and 9 on l(w) = h w^2 / 2 against the closed form, and the sign.
def quadratic_hypergradient(alpha, h, w0, T):
    w, u = w0, 0.0
    for _ in range(T):
        g = h * w
        u = u - g - alpha * h * u  # Equation 9, with H = h and the old u
        w = w - alpha * g
    return w, u, h * w * u         # Equation 8 at the end: d l(w_T) / d alpha


h_ex, w0_ex = 2.0, 1.5
for T_ex in (1, 2, 5):
    for a_ex in np.linspace(0.02, 0.98, 13) / h_ex * 2:
        w_T, u_T, dl = quadratic_hypergradient(a_ex, h_ex, w0_ex, T_ex)
        assert math.isclose(w_T, (1 - a_ex * h_ex) ** T_ex * w0_ex, rel_tol=1e-12, abs_tol=1e-15)
        assert math.isclose(u_T, -T_ex * h_ex * (1 - a_ex * h_ex) ** (T_ex - 1) * w0_ex,
                            rel_tol=1e-12, abs_tol=1e-15)
        assert np.sign(dl) == np.sign(a_ex * h_ex - 1), (T_ex, a_ex, dl)
        fd = (0.5 * h_ex * quadratic_hypergradient(a_ex + 1e-6, h_ex, w0_ex, T_ex)[0] ** 2
              - 0.5 * h_ex * quadratic_hypergradient(a_ex - 1e-6, h_ex, w0_ex, T_ex)[0] ** 2) / 2e-6
        assert math.isclose(dl, fd, rel_tol=1e-5, abs_tol=1e-8), (dl, fd)

# Exercise 2: the log-space hypergradient is alpha_0 times the raw one (mu fixed).
ex_gen = torch.Generator().manual_seed(seed)
ex_params = models.mlp_init(ex_gen, sizes=sizes["mlp_check"], init_std=0.1, dtype=torch.float64)
ex_x, ex_y = mnist.images.double(), mnist.labels
ex_T = 3
ex_look = [(ex_x[10 * i:10 * i + 10], ex_y[10 * i:10 * i + 10]) for i in range(ex_T)]
ex_eval = [(ex_x[-10:], ex_y[-10:])]
ex_grads = {space: hypergrad.hypergradient(models.mlp_apply, ex_params,
                                           hyperparams.Hyperparameters(0.05, 0.9, learn=("lr",), space=space),
                                           ex_look, ex_eval).grad[0]
            for space in ("log", "raw")}
ex_ratio = ex_grads["log"] / ex_grads["raw"]
assert math.isclose(ex_ratio, 0.05, rel_tol=1e-9), ex_ratio
glue("smd_ex_log_ratio", float(ex_ratio), display=False)
glue("smd_ex_log_T", ex_T, display=False)

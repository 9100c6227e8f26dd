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
# # Precision and sensitivity of long-horizon hypergradients
#
# The offline experiment runs stochastic meta-descent with exact forward-mode
# hypergradients, in float32, at horizons up to $T$ = 5000. The hypergradient of the
# meta-objective $L(w_T)$ with respect to the schedule's hyperparameters
# $u = (\log\tfrac{\alpha_0}{1-\mu}, \log\beta)$ is
#
# $$
# \frac{\partial L(w_T)}{\partial u} = \nabla L(w_T)^\top \frac{\partial w_T}{\partial u}, \tag{8}
# $$
#
# with the tangents $\partial w_t / \partial u$ carried through every step by a
# Hessian-vector product (the momentum form of Equation 9; `hypergrad.hypergradient` computes
# both, and the [SMD chapter](smd) shows its source beside the equations). An earlier check found that at
# the offline experiment's warm start float32 and float64 hypergradients agree closely at
# $T$ = 100 but differ by tens of percent at $T$ = 1000, where even the meta-objective
# differs by a few percent. Two explanations predict different things:
#
# - **Sensitivity.** The training dynamics amplify any tiny change (chaos). Then float32's
#   roundoff is just one such change, float64 would not be more *meaningful*, and a
#   single-trajectory hypergradient at long horizons is a noisy estimate in any precision.
#   A perturbation of the starting weights of about float32's roundoff
#   ($10^{-7}$ relative) should then change the float64 hypergradient as much as
#   float32 does.
# - **Roundoff.** float32 arithmetic itself goes wrong, and float64 is the faithful
#   answer. Then the perturbed float64 hypergradients stay close to the unperturbed one.
#
# This chapter measures both at the paper's horizons, with the offline experiment's network,
# warm start and schedule ($\alpha_0$ = 0.05, $\beta$ = 1, $K$ = 5000, $\mu$ = 0.9), one fixed
# minibatch sequence and a fixed set of training examples for the meta-objective. From the
# same warm start (float32, so exactly representable in float64) it computes the
# hypergradient in float32, in float64, and in float32 by the generic double-backward
# Hessian-vector products (the same mathematics, another roundoff); in float64 from starting
# weights perturbed by $10^{-7}$ relative (several independent directions) and by $10^{-10}$
# (is the response proportional?); in float32 from a perturbed start; and in float64 and
# float32 on other minibatch sequences (the noise SMD already faces from one meta step to the
# next, and how float32's error varies with the minibatches). The verdicts and the sentences
# of the conclusion are chosen by code (`precision_analysis.verdicts` and `conclusion`) from
# the numbers.

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
import numpy as np
import torch
from IPython.display import Markdown, display

from shortbias_lib.engine import batches, hvp, hypergrad, hyperparams, models, warm_start
from shortbias_lib import data
from shortbias_lib.experiments.precision import (figures as plot_precision, experiment as precision,
                                                 analysis as precision_analysis,
                                                 variants as precision_variants)
from shortbias_lib.chapters import hypergrad_precision as precision_facts
from shortbias_lib.notebook import glue_facts

# %% [markdown]
# The measurement at the paper's horizons is run once and its result committed in `archive/`;
# the page shows it beside a live run of its own profile.

# %%
archive_file = precision.archive_path(0)
archived = precision.load_precision(archive_file) if archive_file.exists() else None
live, live_meta = precision.run_precision(profile, device=device, seed=seed,
                                          data_root=data_root,
                                          results=context.results_dir)
arrays, meta = archived if archived is not None else (live, live_meta)
display(Markdown(precision_facts.result_banner(archive_file, archived)))

# %% tags=["remove-cell"]
glue_facts(precision_facts.differences_facts(arrays, archived is not None))
glue_facts(precision_facts.roundoff_facts(arrays))

# %% [markdown]
# ## Float32, float64 and perturbed starts
#
# Each point is the relative difference of one hypergradient component to the float64
# hypergradient on the same minibatches. Grey triangles show how much the float64
# hypergradient changes with *other* minibatches: the scale of the noise that SMD's
# hypergradients have anyway.

# %% mystnb={"figure": {"caption": "Relative difference to the float64 hypergradient against the horizon, for each component (left: the log effective learning rate, right: log beta), in the archived result: float32 (red; open circles: on other minibatch sequences, each against float64 on the same sequence), float32 by double backward (brown), float64 from starting weights perturbed by 1e-7 (blue, each perturbation a dot, the largest a line) and by 1e-10 (green), float32 from a perturbed start (orange), and float64 on other minibatches against the reference (grey, the minibatch noise).", "name": "fig-precision-archive"}}
figure = plot_precision.plot_relative_differences(arrays)

# %% [markdown]
# The table gives the relative differences to float64 in {glue:md}`hp_shown`, the larger of the
# two components' (the figure shows both), and the verdict of each horizon.

# %%
display(Markdown(precision_analysis.markdown_table(arrays)))

# %% [markdown]
# **In short:** {glue:md}`hp_headline`
#
# In {glue:md}`hp_shown`, the float32 computations differ from float64 by at most
# {glue:text}`hp_f32_first:.1e` (relative, either component) at $T$ = {glue:text}`hp_T_first`,
# and by up to {glue:text}`hp_f32_max:.0%` at $T$ = {glue:text}`hp_T_f32_max`; the
# meta-objective differs by up to {glue:text}`hp_f32_loss_max:.1%`.
#
# {glue:md}`hp_conclusion`
#
# Relative differences per component blow up where a component of the float64
# hypergradient happens to be near zero (the $\log\beta$ component at short horizons, or
# on some minibatch sequences), so the comparisons *across* minibatch sequences in the
# table are relative to each component's typical size at that horizon.
#
# ## Roundoff that changes the path
#
# The float32 computations in the table are the same mathematics: the default ("fast")
# Hessian-vector products, the generic double-backward ones (the same operations in another
# order), and the fast ones from a start perturbed by about one unit in the last place. A
# float64 run that rounds its weights to float32 after every step is a fourth way to make
# float32-sized roundoff (its meta-objective is in the table). {glue:md}`hp_lottery`
# Roundoff is made at every step, not only at the start, and a difference of $10^{-7}$ can
# stay that small along a trajectory until some discrete event (a ReLU switching for one
# example, say) happens on one path and not on the other; from there the two paths
# separate. A few perturbations of the start sample this only sparsely, so "float64 hardly
# moves" is evidence that float64's trajectory is stable, not a proof.
#
# ## This page's live run

# %%
display(Markdown(f"**Live run**: {precision_facts.settings_sentence(live_meta)}.\n\n"
                 + precision_analysis.markdown_table(live) + "\n\n"
                 + precision_analysis.conclusion(live)))

# %% mystnb={"figure": {"caption": "The same comparison as in the first figure, in this page's live run (its profile's horizons).", "name": "fig-precision-live"}}
figure = plot_precision.plot_relative_differences(live)

# %% [markdown]
# ## Exercises
#
# **1. Linear or chaotic?** The table's perturbation columns come from a relative
# perturbation of $10^{-7}$ and, in the same direction, one of $10^{-10}$. What does
# `precision_analysis.table_rows(arrays)[k]["linearity"]` measure, and what value would chaos give
# at a long horizon?

# %% tags=["solution", "hide-cell"]
# Recompute the linearity column from the raw hypergradients: the ratio of the two
# perturbations' differences over the ratio of their sizes.
rel, _ = precision_analysis.relative_differences(arrays)
kind, eps = list(arrays["variant_kind"]), np.asarray(arrays["variant_eps"], dtype=float)
direction = np.asarray(arrays["variant_direction"])
small = kind.index("float64 small perturbation")
large = next(j for j, k in enumerate(kind)
             if k == "float64 perturbed" and direction[j] == direction[small])
assert eps[small] / eps[large] == 1e-3
linearity = (rel[small] / rel[large]) / (eps[small] / eps[large])  # (horizons, 2)
rows = precision_analysis.table_rows(arrays)
for k, row in enumerate(rows):
    assert np.isclose(row["linearity"], np.max(linearity[k]), rtol=1e-12,
                      equal_nan=True)
glue_facts({"hp_ex1_linearity": ", ".join(f"{row['linearity']:.3g}" for row in rows),
            "hp_ex1_horizons": ", ".join(str(row["horizon"]) for row in rows)})
linearity

# %% [markdown] tags=["solution"]
# ```{admonition} Solution
# :class: dropdown
# It is the ratio of the two perturbations' differences divided by the ratio of their sizes
# ($10^{-3}$). Where the hypergradient depends smoothly on the starting weights, the
# difference is proportional to the perturbation and the ratio is 1, even when the dynamics
# amplify it exponentially (chaos, linearised). Chaos shows once the large perturbation's
# difference saturates at the spread of the hypergradient itself while the small one's still
# grows: the ratio rises above 1. ReLU kinks (a unit switching on or off for one example) make
# the dependence jump instead; a $10^{-7}$ perturbation crosses more of them than a
# $10^{-10}$ one, and the ratio falls below 1. In {glue:md}`hp_shown` the ratio (the larger of
# the two components') is {glue:text}`hp_ex1_linearity` at $T$ = {glue:text}`hp_ex1_horizons`.
# ```

# %% [markdown]
# **2. Relative to what?** In the archived result, compare the plain relative difference of
# float32 on the second minibatch sequence at $T$ = 1000 (the open red circles in the first
# figure) with the table's value relative to the typical size. Why do they differ so much,
# and which one matters for SMD?

# %% tags=["solution", "hide-cell"]
horizons = [int(h) for h in arrays["horizons"]]
k = horizons.index(1000) if 1000 in horizons else len(horizons) - 1
j = list(arrays["variant_kind"]).index("float32 other minibatches")
reference = precision_analysis.reference_rows(arrays)[j]  # float64 on the same sequence
log_beta = np.asarray(arrays["grad"], dtype=float)[:, k, 1]     # the log beta component
typical = float(arrays["summary_scale"][k, 1])
plain = float(precision_analysis.relative_differences(arrays)[0][j, k, 1])
scaled = abs(log_beta[j] - log_beta[reference]) / typical
value = abs(log_beta[reference]) / typical
if archived is not None:
    assert horizons[k] == 1000
    assert value < 0.1, value     # an order of magnitude below its typical size
    assert plain > 2 and plain > 5 * scaled, (plain, scaled)
glue_facts({"hp_ex2_plain": plain, "hp_ex2_scaled": float(scaled),
            "hp_ex2_small": float(value)})
print(f"plain {plain:.0%}, relative to the typical size {scaled:.0%}; "
      f"the value is {value:.3f} of it")

# %% [markdown] tags=["solution"]
# ```{admonition} Solution
# :class: dropdown
# `precision_analysis.relative_differences(arrays)[0]` gives the plain values, row
# `list(arrays["variant_kind"]).index("float32 other minibatches")`: for the $\log\beta$
# component at $T$ = 1000 it is {glue:text}`hp_ex2_plain:.0%`, against
# {glue:text}`hp_ex2_scaled:.0%` of the component's typical size. On that sequence the
# float64 $\log\beta$ component at $T$ = 1000 is only {glue:text}`hp_ex2_small:.3f` times its
# typical size (`arrays["summary_scale"]`), so a moderate absolute error is several times
# the value itself. SMD's Adam divides each component by the root mean square of its recent
# hypergradients, so what matters for the meta step is the error relative to the
# component's typical size, not to its value on one minibatch sequence.
# ```

# %% [markdown]
# **3. Where do the paths split?** For the warm start and minibatches of this chapter, run
# `shortbias_lib.engine.hypergrad.hypergradient` for $T$ = 300 in float32 twice, once with the
# default products and once with `grad_hvp=autograd_grad_hvp(mlp_apply)`, and compare the
# per-step minibatch losses (`.losses`) of the two runs with those of a float64 run. (The
# warm start is `warm_start.warm_start` as in `precision.run_experiment`; the minibatches are
# `batches.StepBatches(images, labels, 100, batches.derived_seed(seed, 8, 0))`.)

# %% tags=["solution", "hide-cell"]
config, T, early_steps, losses = meta["config"], 300, 20, {}
train = data.load("mnist", train=True, root=data_root, limit=config["train_limit"])
step_batches = batches.StepBatches(train.images, train.labels, config["batch_size"],
                                   batches.derived_seed(meta["seed"], 8, 0))
hyper = hyperparams.Hyperparameters(
    lr=float(config["alpha0"]), momentum=config["momentum"], beta=float(config["beta"]),
    K=float(config["K"]), learn=("lr", "beta"))
warm = warm_start.warm_state(arrays)     # the warm start stored with the result
for name, dtype, grad_hvp in (
        ("float64", torch.float64, None), ("default", torch.float32, None),
        ("double-backward", torch.float32, hvp.autograd_grad_hvp(models.mlp_apply))):
    start = dict(dtype=str(dtype).removeprefix("torch."), direction=0, eps=0.0)
    state = precision_variants.start_state(warm, start, meta["seed"])
    lookahead = ((step_batches(t)[0].to(dtype), step_batches(t)[1]) for t in range(T))
    objective = [(train.images[:100].to(dtype), train.labels[:100])]
    losses[name] = np.asarray(hypergrad.hypergradient(
        models.mlp_apply, state, hyper, lookahead, objective, config["convention"],
        t0=0, grad_hvp=grad_hvp).losses, dtype=float)
gaps = {name: np.abs(losses[name] - losses["float64"]) / losses["float64"]
        for name in ("default", "double-backward")}
early = max(float(gap[:early_steps].max()) for gap in gaps.values())
assert early < 1e-5, early  # "about 1e-7": float32 roundoff, far below a departure
glue_facts({"hp_ex3_early_steps": early_steps, "hp_ex3_early": early,
            "hp_ex3_outcome": Markdown(precision_facts.departure_sentences(gaps))})
print(precision_facts.departure_sentences(gaps))

# %% [markdown] tags=["solution"]
# ```{admonition} Solution
# :class: dropdown
# For a while both float32 runs stay within about $10^{-7}$ (relative) of float64, the size
# of float32's roundoff: over the first {glue:text}`hp_ex3_early_steps` steps the largest
# gap is {glue:text}`hp_ex3_early:.1e`. {glue:md}`hp_ex3_outcome` Which run leaves float64's
# path, and when, depends on the version of the code and the machine, which is the point.
# (The numbers here are from the warm start and minibatches of {glue:md}`hp_shown`, rerun as
# this page was built.)
# ```

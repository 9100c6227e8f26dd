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
# This chapter measures both at the paper's horizons, with the offline experiment's
# network, warm start and schedule ($\alpha_0$ = 0.05, $\beta$ = 1, $K$ = 5000,
# $\mu$ = 0.9), on one fixed minibatch sequence and a fixed set of training examples for
# the meta-objective. Besides float32 and float64 from the same (float32, so exactly
# representable) warm start, and float32 once more by the generic double-backward
# Hessian-vector products (the same mathematics, another roundoff), it computes float64
# hypergradients from starting weights
# perturbed by $10^{-7}$ relative (several independent directions), one scaled down to
# $10^{-10}$ (is the response proportional?), a perturbed float32 run, and float64 and
# float32 on other minibatch sequences: the noise that SMD already faces from one meta
# step to the next, and a check of how float32's error varies with the minibatches. The verdicts
# and the sentences of the conclusion below are chosen by code
# (`shortbias_lib.precision_analysis.verdicts` and `conclusion`) from the numbers.

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
import os

import numpy as np
import torch
from IPython.display import Markdown, display
from myst_nb import glue

from shortbias_lib import (batches, data, hvp, hypergrad, hyperparams, models, offline_design, offline_training,
                           plot_precision, precision, precision_analysis, precision_variants)

# The committed result of the `archive` profile (the paper's horizons, about 5 minutes on
# one core), and the live run of this page's profile.
archive_file = precision.archive_path(0)
archived = precision.load_precision(archive_file) if archive_file.exists() else None
live, live_meta = precision.run_precision(profile, device=device, seed=seed, data_root=data_root,
                                          results=context.results_dir)


def settings(meta):
    config = meta["config"]
    return (f"profile `{meta['profile']}`, seed {meta['seed']}, run on {meta['device']} at "
            f"{meta['time_utc']} (commit `{meta['git_commit']}`, torch {meta['torch']}); horizons "
            f"{', '.join(str(h) for h in config['horizons'])}; meta-objective on "
            f"{config['objective_examples']} training examples; {config['perturbed_runs']} float64 and "
            f"{config['perturbed_runs_float32']} float32 runs from a start perturbed by "
            f"{config['perturbation']:.0e}; {config['batch_resamples']} other minibatch "
            f"sequence{'s' if config['batch_resamples'] != 1 else ''}")


# %% tags=["remove-input"]
if archived is not None:
    arrays, meta = archived
    shown = "the archived result"
    display(Markdown(
        f"**Archived result** `{os.path.relpath(archive_file, precision.runs.REPO_ROOT)}`: "
        f"{settings(meta)}. Regenerate it with `{precision.ARCHIVE_COMMAND}`."))
else:
    arrays, meta = live, live_meta
    shown = "this page's live run"
    display(Markdown(f"```{{warning}}\nThe archived result `{archive_file.name}` is missing; this page "
                     f"shows its live run instead. Create it with `{precision.ARCHIVE_COMMAND}`.\n```"))
horizons = [int(h) for h in arrays["horizons"]]

# %% [markdown]
# ## Float32, float64 and perturbed starts
#
# Each point is the relative difference of one hypergradient component to the float64
# hypergradient on the same minibatches. Grey triangles show how much the float64
# hypergradient changes with *other* minibatches: the scale of the noise that SMD's
# hypergradients have anyway.

# %% mystnb={"figure": {"caption": "Relative difference to the float64 hypergradient against the horizon, for each component (left: the log effective learning rate, right: log beta), in the archived result: float32 (red; open circles: on other minibatch sequences, each against float64 on the same sequence), float32 by double backward (brown), float64 from starting weights perturbed by 1e-7 (blue, each perturbation a dot, the largest a line) and by 1e-10 (green), float32 from a perturbed start (orange), and float64 on other minibatches against the reference (grey, the minibatch noise).", "name": "fig-precision-archive"}}
figure = plot_precision.plot_relative_differences(arrays)

# %% tags=["remove-input"]
display(Markdown(
    f"Relative differences to float64 in {shown}, the larger of the two components' (the figure "
    "shows both), and the verdict of each horizon:\n\n" + precision_analysis.markdown_table(arrays)))

# %% tags=["remove-cell"]
rows = precision_analysis.table_rows(arrays)
worst = max(rows, key=lambda row: row["float32_any"])
glue("hp_shown", Markdown(shown), display=False)
glue("hp_T_first", rows[0]["horizon"], display=False)
glue("hp_f32_first", rows[0]["float32_any"], display=False)
glue("hp_f32_max", worst["float32_any"], display=False)
glue("hp_T_f32_max", worst["horizon"], display=False)
glue("hp_f32_loss_max", max(row["float32_any_loss"] for row in rows), display=False)
glue("hp_headline", Markdown(precision_analysis.headline(arrays)), display=False)
glue("hp_conclusion", Markdown(precision_analysis.conclusion(arrays)), display=False)
# Do float32 computations that differ only in roundoff disagree with each other somewhere?
split = [row for row in rows
         if max(row["float32"], row["float32_double"], row["float32_perturbed"]) > precision_analysis.AGREE_TOL
         and min(row["float32"], row["float32_double"], row["float32_perturbed"]) < precision_analysis.AGREE_TOL]
if split:
    lottery = (f"At T = {', '.join(str(row['horizon']) for row in split)} some of the float32 computations "
               f"agree with float64 to within {precision_analysis.AGREE_TOL:.0%} and others do not, although they "
               "differ only in the order of their operations: which hypergradient float32 gives there is a "
               "matter of roundoff luck.")
else:
    lottery = ("In this result the float32 computations agree with each other wherever they agree with "
               "float64: no horizon shows one of them on a different path from the others.")
glue("hp_lottery", Markdown(lottery), display=False)

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

# %% tags=["remove-input"]
display(Markdown(f"**Live run**: {settings(live_meta)}.\n\n" + precision_analysis.markdown_table(live)
                 + "\n\n" + precision_analysis.conclusion(live)))

# %% mystnb={"figure": {"caption": "The same comparison as in the first figure, in this page's live run (its profile's horizons).", "name": "fig-precision-live"}}
figure = plot_precision.plot_relative_differences(live)

# %% [markdown]
# ## Exercises
#
# **1. Linear or chaotic?** The table's perturbation columns come from a relative
# perturbation of $10^{-7}$ and, in the same direction, one of $10^{-10}$. What does
# `precision_analysis.table_rows(arrays)[k]["linearity"]` measure, and what value would chaos give
# at a long horizon?
#
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
#
# **2. Relative to what?** In the archived result, compare the plain relative difference of
# float32 on the second minibatch sequence at $T$ = 1000 (the open red circles in the first
# figure) with the table's value relative to the typical size. Why do they differ so much,
# and which one matters for SMD?
#
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
#
# **3. Where do the paths split?** For the warm start and minibatches of this chapter, run
# `shortbias_lib.hypergrad.hypergradient` for $T$ = 300 in float32 twice, once with the
# default products and once with `grad_hvp=autograd_grad_hvp(mlp_apply)`, and compare the
# per-step minibatch losses (`.losses`) of the two runs with those of a float64 run. (The
# warm start is `offline_training.warm_start` as in `precision.run_experiment`; the minibatches are
# `batches.StepBatches(images, labels, 100, offline_design.derived_seed(seed, 8, 0))`.)
#
# ```{admonition} Solution
# :class: dropdown
# For a while both float32 runs stay within about $10^{-7}$ (relative) of float64, the size
# of float32's roundoff: over the first {glue:text}`hp_ex3_early_steps` steps the largest
# gap is {glue:text}`hp_ex3_early:.1e`. {glue:md}`hp_ex3_outcome` Which run leaves float64's
# path, and when, depends on the version of the code and the machine, which is the point.
# (The numbers here are from the warm start and minibatches of {glue:md}`hp_shown`, rerun as
# this page was built.)
# ```

# %% tags=["remove-cell"]
# Exercise 1: the linearity column is the ratio of the two perturbations' differences over the
# ratio of their sizes, recomputed here from the raw hypergradients.
ex_rows = precision_analysis.table_rows(arrays)
ex_rel, _ = precision_analysis.relative_differences(arrays)
ex_kind = list(arrays["variant_kind"])
ex_eps = np.asarray(arrays["variant_eps"], dtype=float)
ex_dir = np.asarray(arrays["variant_direction"])
ex_small = ex_kind.index("float64 small perturbation")
ex_first = next(j for j, kind in enumerate(ex_kind)
                if kind == "float64 perturbed" and ex_dir[j] == ex_dir[ex_small])
ex_lin = (ex_rel[ex_small] / ex_rel[ex_first]) / (ex_eps[ex_small] / ex_eps[ex_first])
assert ex_eps[ex_small] / ex_eps[ex_first] == 1e-3
for k, row in enumerate(ex_rows):
    assert np.isclose(row["linearity"], np.max(ex_lin[k]), rtol=1e-12, equal_nan=True)
glue("hp_ex1_linearity", ", ".join(f"{row['linearity']:.3g}" for row in ex_rows), display=False)
glue("hp_ex1_horizons", ", ".join(str(row["horizon"]) for row in ex_rows), display=False)

# Exercise 2 (stated for the archived result): float32 on the second minibatch sequence at T = 1000.
ex2_arrays = archived[0] if archived is not None else arrays
ex2_H = [int(h) for h in ex2_arrays["horizons"]]
ex2_k = ex2_H.index(1000) if 1000 in ex2_H else len(ex2_H) - 1
ex2_j = list(ex2_arrays["variant_kind"]).index("float32 other minibatches")
ex2_ref = precision_analysis.reference_rows(ex2_arrays)[ex2_j]
ex2_grad = np.asarray(ex2_arrays["grad"], dtype=float)[:, ex2_k, 1]   # the log beta component
ex2_scale = float(ex2_arrays["summary_scale"][ex2_k, 1])
ex2_plain = float(precision_analysis.relative_differences(ex2_arrays)[0][ex2_j, ex2_k, 1])
ex2_scaled = abs(ex2_grad[ex2_j] - ex2_grad[ex2_ref]) / ex2_scale
ex2_small = abs(ex2_grad[ex2_ref]) / ex2_scale
if archived is not None:
    assert ex2_H[ex2_k] == 1000
    assert ex2_small < 0.1, ex2_small            # an order of magnitude below its typical size
    assert ex2_plain > 2 and ex2_plain > 5 * ex2_scaled, (ex2_plain, ex2_scaled)
glue("hp_ex2_plain", ex2_plain, display=False)
glue("hp_ex2_scaled", float(ex2_scaled), display=False)
glue("hp_ex2_small", float(ex2_small), display=False)

# %% tags=["remove-cell"]
# Exercise 3: per-step minibatch losses of float32 (default and double-backward products)
# against float64 over T = 300 steps, from the warm start of the result shown.
ex3_config = meta["config"]
ex3_T, ex3_early_steps = 300, 20
ex3_set = data.load("mnist", train=True, root=data_root, limit=ex3_config["train_limit"])
ex3_batches = batches.StepBatches(ex3_set.images, ex3_set.labels, ex3_config["batch_size"],
                                  offline_design.derived_seed(meta["seed"], 8, 0))
ex3_hyper = hyperparams.Hyperparameters(lr=float(ex3_config["alpha0"]), momentum=ex3_config["momentum"],
                                      beta=float(ex3_config["beta"]), K=float(ex3_config["K"]),
                                      learn=("lr", "beta"))
ex3_warm = offline_training.warm_state(arrays)
ex3_losses = {}
for name, dtype, grad_hvp in (("float64", torch.float64, None), ("default", torch.float32, None),
                              ("double-backward", torch.float32, hvp.autograd_grad_hvp(models.mlp_apply))):
    state = precision_variants.start_state(ex3_warm, dict(dtype=str(dtype).removeprefix("torch."), direction=0, eps=0.0),
                                  meta["seed"])
    lookahead = ((ex3_batches(t)[0].to(dtype), ex3_batches(t)[1]) for t in range(ex3_T))
    result = hypergrad.hypergradient(models.mlp_apply, state, ex3_hyper, lookahead,
                                     [(ex3_set.images[:100].to(dtype), ex3_set.labels[:100])],
                                     ex3_config["convention"], t0=0, grad_hvp=grad_hvp)
    ex3_losses[name] = np.asarray(result.losses, dtype=float)
ex3_gap = {name: np.abs(ex3_losses[name] - ex3_losses["float64"]) / ex3_losses["float64"]
           for name in ("default", "double-backward")}
ex3_early = max(float(gap[:ex3_early_steps].max()) for gap in ex3_gap.values())
assert ex3_early < 1e-5, ex3_early  # "within about 1e-7": float32 roundoff, far below a departure
sentences = []
for name, gap in ex3_gap.items():
    left = np.flatnonzero(gap > 2e-6)     # well above the roundoff level of float32's losses
    if len(left) == 0:
        sentences.append(f"The {name} run stayed within {gap.max():.1e} of float64 for all {ex3_T} steps.")
        continue
    step = int(left[0])
    before = float(gap[:step].max()) if step else float("nan")
    sentences.append(
        f"The {name} run left float64's path at step {step + 1}: its gap, at most {before:.1e} over all "
        f"earlier steps, was {gap[step]:.1e} at that step (a factor {gap[step] / before:.0f} in one step), "
        f"and it then grew to {gap[step:].max():.1%} (the largest over the remaining steps).")
glue("hp_ex3_early_steps", ex3_early_steps, display=False)
glue("hp_ex3_early", ex3_early, display=False)
glue("hp_ex3_outcome", Markdown(" ".join(sentences)), display=False)

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
# # Does the noisy quadratic predict the network's short-horizon bias?
#
# The paper explains short-horizon bias on a noisy quadratic (Section 2) and then shows
# the same bias in neural networks (Section 3), by analogy. This chapter tests the
# analogy quantitatively. At the warm start of the offline MNIST experiment (the
# 784-100-100-10 MLP after 50 warm-up steps, the point from which every schedule of the
# archived run of the paper's design starts) we **measure the network's own noisy quadratic**:
#
# * the top of the Hessian spectrum, by Lanczos with Hessian-vector products;
# * the density of the rest, by stochastic Lanczos quadrature (SLQ) on the Hessian with
#   the top directions deflated;
# * the minibatch (batch 100) gradient noise variance along the Hessian's eigendirections,
#   from per-example gradients;
# * the initial distance along them, the Newton step $u_i^\top g / \lambda_i$ of the
#   full-batch gradient $g$ (and, for the rest, the gradient's spectral measure, by
#   Lanczos started from $g$).
#
# From these we build a diagonal noisy quadratic and run the **exact second-moment
# dynamics of Section 2** for inverse-time schedules
# $\alpha_t = \alpha_0 / (1 + t/K)^\beta$ ($K = 5000$, $\mu = 0.9$, the authors' ranges of
# $\alpha_0$ and $\beta$), pick the best schedule for each horizon of the offline
# experiment, and compare with what the network chose.

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

import numpy as np
from IPython.display import Markdown, display

from shortbias_lib.nqm import prediction as npred
from shortbias_lib.chapters import nqm_prediction as facts
from shortbias_lib.engine import batches, warm_start
from shortbias_lib.experiments.offline import experiment as offline
from shortbias_lib.experiments.offline import surface as offline_surface
from shortbias_lib.data import load
from shortbias_lib.engine.models import mlp_apply
from shortbias_lib.notebook import glue_facts
from shortbias_lib.profiles import pick
from shortbias_lib.engine.schedules import InverseTime

# %% [markdown]
# ## The measurement
#
# The warm start, the horizons, the momentum, $K$ and the ranges of $\alpha_0$ and $\beta$ are
# the archived run's own (its parameters are stored in the result file).

# %%
archive_file = offline.archive_path(seed=0, profile="archive_gpu")
archived, archived_meta = offline.load_offline(archive_file)
config = archived_meta["config"]
horizons = [int(h) for h in config["horizons"]]
ranges = (tuple(config["log10_alpha0_range"]), tuple(config["log10_beta_range"]))
warm = warm_start.warm_state(archived)

# %% [markdown]
# The Hessian, the full-batch gradient and the per-example gradients are taken in float64 on a
# random subsample of the training set, with the Lanczos budgets of this profile:

# %%
sizes = pick(profile, npred.SIZES)
train = load("mnist", train=True, root=data_root)
images, labels = npred.subsample(train.images, train.labels, sizes["examples"], seed)
started = time.time()
m = npred.measure(mlp_apply, warm.params, images, labels, k=sizes["k"],
                  top_steps=sizes["top_steps"], probes=sizes["probes"],
                  slq_steps=sizes["slq_steps"], grad_steps=sizes["grad_steps"],
                  batch_size=int(config["batch_size"]), seed=seed)
display(Markdown(facts.sizes_table(sizes, m, len(train.labels), time.time() - started)))

# %% [markdown]
# The next cell builds the noisy quadratic. Each top Ritz pair is one dimension; the rest of
# the spectrum is grouped into log-spaced curvature bins, each acting as one dimension that
# carries its bin's summed second moments (the Section 2 dynamics are linear in the initial
# second moment and the noise variance, so a bin of identical directions is exactly one
# dimension with their sums). Curvatures below a floor, {glue:text}`np_floor_rel:.0e` times
# $\lambda_{\max}$ for the main prediction, are dropped: the quadratic model has no minimum
# along flat or negative directions, and SLQ with this budget does not resolve the cluster
# of eigenvalues near zero. The sensitivity runs use floors of {glue:text}`np_alt_floors`
# times $\lambda_{\max}$.

# %%
predictions = npred.predict_all(m, sizes, horizons, config["K"], config["momentum"],
                                ranges)
nqm, info, pred = predictions[npred.FLOOR]
glue_facts(facts.measurement_facts(m, predictions))

# %% [markdown]
# **What was measured.** The largest Ritz value is {glue:text}`np_lam_max:.3g` and the
# smallest of the top {glue:text}`np_k` is {glue:text}`np_lam_k:.3g`. The floor of the main prediction is
# {glue:text}`np_floor:.2g`; below it lie {glue:text}`np_dropped_dirs:.1f`% of the deflated
# directions (by SLQ weight), holding {glue:text}`np_dropped_grad:.1f`% of the squared
# gradient norm. The total minibatch noise variance, $\operatorname{tr} C / B$, is
# {glue:text}`np_total_noise:.3g`; the noisy quadratic's dimensions
# {glue:md}`np_noise_cov_md`. The noisy quadratic has {glue:text}`np_dims` dimensions.
# Its initial excess loss, $\tfrac12 \sum_i h_i \mathbb E[\theta_{0,i}]^2$, is
# {glue:text}`np_excess:.3g`, against the network's training loss of
# {glue:text}`np_loss:.3g` on the subsample. The largest correlation between the noise
# along two top directions is {glue:text}`np_offdiag:.2f`; the diagonal model drops all
# such correlations.
#
# Approximations, all of them: the Hessian, gradient and noise come from a subsample; the
# noise is taken as diagonal in the Hessian's eigenbasis; the bulk's noise per bin is the
# noise along SLQ Ritz vectors weighted by their quadrature weights (a stochastic estimate
# with few probes); each bin's curvature is its mean node; flat and negative directions are
# dropped; the warm start's velocity is not carried over (the Section 2 dynamics start at
# rest); and the curvature is frozen at the warm start, while the network's changes as it
# trains.

# %% mystnb={"figure": {"caption": "The network's noisy quadratic at the warm start. Left: the largest Ritz values of the Hessian (bars: residual bounds, mostly invisible). Middle: the density of the rest of the spectrum from SLQ, as directions per bin (dashed: the main floor). Right: against curvature, the minibatch (batch 100) gradient noise variance per direction (points with standard errors: top pairs; line: bulk bins) and the squared mean gradient per direction (crosses, dashed line).", "name": "fig-np-measurement"}}
figure = npred.plot_measurement(m, info, npred.FLOOR * float(m["top_values"][0]))

# %% [markdown]
# ## Predicted against measured schedules
#
# For every schedule on a regular grid of the authors' ranges, `predict_all` above ran the
# exact expected dynamics for 20,000 steps and recorded the expected excess loss at each
# horizon; the best grid point of each horizon is the prediction. The measured values are
# the archived run's surface optima with their 95% bootstrap intervals (see the offline
# chapter).
#
# The measurement is random: the subsample, the Lanczos start and the SLQ probes. The next
# cell repeats it on another subsample with other seeds (same sizes) and predicts again with
# the main floor, so the spread between the two predictions shows how much of any gap is
# measurement noise.

# %%
images2, labels2 = npred.subsample(train.images, train.labels, sizes["examples"],
                                   seed + 1)
m2 = npred.measure(mlp_apply, warm.params, images2, labels2, k=sizes["k"],
                   top_steps=sizes["top_steps"], probes=sizes["probes"],
                   slq_steps=sizes["slq_steps"], grad_steps=sizes["grad_steps"],
                   batch_size=int(config["batch_size"]), seed=seed + 1)
nqm2, info2 = npred.build_nqm(m2, npred.FLOOR * float(m2["top_values"][0]),
                              sizes["bins"])
pred2 = npred.predict(nqm2, horizons, config["K"], config["momentum"], *ranges,
                      *sizes["grid"])

# %%
rows = offline_surface.summary_rows(archived, config)   # the network's best schedules
display(Markdown(facts.comparison_table(rows, predictions, pred2)))

# %% mystnb={"figure": {"caption": "Predicted (noisy quadratic measured at the warm start; thick: main floor, dotted: the other floors, dashed: a second measurement on another subsample) against measured (the network, archived run; squares with 95% bootstrap intervals) per horizon. Left: best decay exponent; middle: best initial learning rate (grey lines: the sampled ranges); right: the loss after 20k steps of each horizon's best schedule relative to that of the 20k-step horizon's best (network: the trained surface optima).", "name": "fig-np-comparison"}}
measured_final = np.array([r["final_train_loss"] for r in rows])
figure = npred.plot_comparison(horizons, npred.curves(predictions, pred2), rows,
                               measured_final, ranges[1], ranges[0])

# %% [markdown]
# **Does the warm-start quadratic stay put?** The noisy quadratic freezes the curvature,
# noise and gradient of the warm start. The cell below trains the network from the warm
# start with the longest horizon's measured best schedule and measures, on the same
# subsample, the loss, the squared gradient norm, the top Ritz values and the total noise
# again after a few thousand steps (a smaller Lanczos budget, see the table).

# %%
best_long = rows[-1]
step_batches = batches.StepBatches(train.images, train.labels,
                                   int(config["batch_size"]), seed)
schedule = InverseTime(best_long["alpha0"], best_long["beta"], config["K"])
later = npred.later_points(mlp_apply, warm, step_batches, schedule, config["momentum"],
                           sizes["later"], images, labels, k=sizes["later_k"],
                           lanczos_steps=sizes["later_steps"],
                           batch_size=int(config["batch_size"]))
display(Markdown(facts.later_table(later, best_long)))
glue_facts(facts.later_facts(later))

# %% [markdown]
# Put together, the comparison's numbers and its verdict:

# %%
glue_facts(facts.comparison_facts(
    rows, offline_surface.claims(archived), predictions, pred2,
    offline_surface.edge_sentence(archived, config)))

# %% [markdown]
# {glue:md}`np_verdict`
#
# **Where the prediction holds.** The best decay exponent of the noisy quadratic
# {glue:text}`np_pred_trend` with the horizon, and the network's
# {glue:text}`np_meas_trend`: the two {glue:text}`np_trend_verdict` on the direction of the
# bias. The predicted best $\beta$ lies inside the network's 95% interval for
# {glue:text}`np_inside` of {glue:text}`np_H` horizons. {glue:md}`np_alpha_sentence`
#
# **Where it breaks.** The largest gap is at the {glue:text}`np_worst_T`-step horizon, a
# factor of {glue:text}`np_worst_gap:,.0f` in $\beta$. The ratio of the best $\beta$ of the
# {glue:text}`np_T_short`- and {glue:text}`np_T_long`-step horizons is
# {glue:text}`np_pred_beta_ratio:,.0f` predicted against {glue:text}`np_meas_beta_ratio:,.0f`
# measured (lower end of the 95% interval {glue:text}`np_meas_beta_low:,.0f`).
# {glue:md}`np_edges` The loss after {glue:text}`np_T_long` steps of the
# {glue:text}`np_T_short`-step choice over the {glue:text}`np_T_long`-step choice is
# {glue:text}`np_pred_loss_ratio:,.0f` predicted against {glue:text}`np_meas_loss_ratio:,.0f`
# measured (95% interval {glue:text}`np_meas_loss_low:,.0f` to
# {glue:text}`np_meas_loss_high:,.0f`; {glue:text}`np_meas_loss_trained:,.0f` from the
# trained optima), so the prediction is {glue:text}`np_loss_verdict` the interval and the
# network's ratio is {glue:text}`np_loss_factor:,.0f` times the predicted one. Moving the
# floor as above gives predicted ratios from {glue:text}`np_alt_loss_low:,.0f` to
# {glue:text}`np_alt_loss_high:,.0f`. The second measurement predicts a ratio of
# {glue:text}`np_rep_loss_ratio:,.0f`, best $\beta$ within a factor of
# {glue:text}`np_rep_beta_factor:.3g` and best $\alpha_0$ within a factor of
# {glue:text}`np_rep_alpha_factor:.3g` of the first at every horizon (inside the network's
# interval for {glue:text}`np_rep_inside` of {glue:text}`np_H` horizons): at this profile's
# sizes the measurement's own noise is of that size, so only gaps well beyond it count.
#
# **Why.** For the longest horizon the noisy quadratic wants a decay exponent of
# {glue:text}`np_pred_final_beta:.3g`, while the network's best is
# {glue:text}`np_meas_final_beta:.2g` (its interval reaches
# {glue:text}`np_meas_final_beta_high:.2g`). In the
# quadratic, the noise floor $\propto \alpha$ is only beaten by decaying the learning rate;
# the network instead keeps a large rate useful for 20k steps. Its loss is not a fixed
# quadratic: along its best long schedule, after {glue:text}`np_later_T` steps the largest
# Ritz value is {glue:text}`np_later_lam:.3g` (warm start {glue:text}`np_later_lam0:.3g`),
# the total noise $\operatorname{tr} C / B$ is {glue:text}`np_later_noise:.3g` (warm start
# {glue:text}`np_later_noise0:.3g`) and the squared gradient norm
# {glue:text}`np_later_g:.3g` (warm start {glue:text}`np_later_g0:.3g`); and its loss keeps
# falling towards zero,
# {glue:text}`np_meas_final:.2g` after 20k steps of the best schedule, while the quadratic
# measured at the warm start still holds an expected excess loss of
# {glue:text}`np_final_excess:.2g` under its own best schedule (its noise floor). The
# qualitative mechanism carries over; the size of the effect is set by what the quadratic
# leaves out. {glue:md}`np_noise_sentence` Building and solving a new noisy quadratic at
# each later point (not done here) would test that directly.

# %% [markdown]
# ## Exercises
#
# **1. The largest stable rate.** With momentum $\mu$ (the paper's form,
# $v \leftarrow \mu v - \alpha g$, $w \leftarrow w + v$), SGD along a quadratic direction of
# curvature $h$ is stable exactly when $0 < \alpha h < 2(1 + \mu)$. Derive this from the
# characteristic polynomial of the two-step recursion, then use the measured top curvature
# to find the largest learning rate the warm start tolerates. How does it compare with the
# top of the authors' range for $\alpha_0$ and with the shortest horizon's best $\alpha_0$?

# %% tags=["solution", "hide-cell"]
mu, lam_max = float(config["momentum"]), float(m["top_values"][0])


def spectral_radius(alpha, h):
    """Largest |root| of the momentum recursion along a direction of curvature h."""
    return max(abs(np.roots([1.0, -(1.0 + mu - alpha * h), mu])))


low, high = 1e-6, 10.0 / lam_max   # bisect for the stability edge, to check the formula
for _ in range(200):
    middle = 0.5 * (low + high)
    stable = spectral_radius(middle, lam_max) < 1.0
    low, high = (middle, high) if stable else (low, middle)
alpha_max = 2.0 * (1.0 + mu) / lam_max
assert abs(low / alpha_max - 1.0) < 1e-6
range_top, alpha_short = 10.0 ** ranges[0][1], float(rows[0]["alpha0"])
print(f"largest stable rate {alpha_max:.3g}; top of the range {range_top:.3g}; "
      f"best alpha_0 of the {horizons[0]}-step horizon {alpha_short:.3g}")
glue_facts({"np_ex_mu": mu, "np_ex_amax": alpha_max, "np_ex_range_top": range_top,
            "np_ex_range_word": "below" if range_top < alpha_max else "above",
            "np_ex_a_short": alpha_short, "np_ex_short_frac": alpha_short / alpha_max})

# %% [markdown] tags=["solution"]
# ```{admonition} Solution
# :class: dropdown
# Along the direction, $w_{t+1} = (1 + \mu - \alpha h) w_t - \mu w_{t-1}$, with
# characteristic polynomial $z^2 - (1 + \mu - \alpha h) z + \mu$. Its roots have product
# $\mu < 1$; they stay inside the unit circle until a real root reaches $z = -1$, where
# $1 + (1 + \mu - \alpha h) + \mu = 0$, that is $\alpha h = 2(1 + \mu)$. With
# $\mu$ = {glue:text}`np_ex_mu:.2g` and the top curvature {glue:text}`np_lam_max:.3g`, the
# largest stable rate is {glue:text}`np_ex_amax:.3g`. The top of the sampled range,
# {glue:text}`np_ex_range_top:.3g`, is {glue:text}`np_ex_range_word` it, and the
# {glue:text}`np_T_short`-step horizon's best $\alpha_0$, {glue:text}`np_ex_a_short:.3g`,
# is {glue:text}`np_ex_short_frac:.0%` of it.
# ```

# %% [markdown]
# **2. What freezing the curvature hides.** The chapter measured the top curvature again
# after {glue:text}`np_later_T` steps of the long horizon's best schedule. Had the noisy
# quadratic used that later curvature, would its largest stable rate rise or fall, and by
# what factor? What does that say about a long schedule that keeps a large rate?

# %% tags=["solution", "hide-cell"]
lam_before = float(later[0]["top_values"][0])
lam_after = float(later[-1]["top_values"][0])
# the stable rate goes as 1 / lambda_max
factor = max(lam_before, lam_after) / min(lam_before, lam_after)
rises = lam_after < lam_before
print(f"top curvature {lam_before:.3g} -> {lam_after:.3g}: the largest stable rate "
      f"{'rises' if rises else 'falls'} by a factor {factor:.3g}")
keeps = ("soon loses, so it overstates the cost of a large rate kept for long"
         if rises else "keeps or gains, so on this count it does not overstate the "
         "cost of a large rate kept for long")
glue_facts({"np_ex_later_factor": factor, "np_ex_later_keeps": keeps,
            "np_ex_later_word": "rises" if rises else "falls"})

# %% [markdown] tags=["solution"]
# ```{admonition} Solution
# :class: dropdown
# The largest stable rate is proportional to $1/\lambda_{\max}$. The top curvature went from
# {glue:text}`np_later_lam0:.3g` to {glue:text}`np_later_lam:.3g`, so the largest stable
# rate {glue:text}`np_ex_later_word` by a factor {glue:text}`np_ex_later_factor:.3g`. A
# quadratic frozen at the warm start charges a long schedule for a sharpness the network
# {glue:text}`np_ex_later_keeps`.
# ```

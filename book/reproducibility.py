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
# # Reproducibility
#
# This page collects, from the result files written by the chapters of this run, each
# number the paper reports next to ours, and says how close we get. Nothing here is
# typed in: the table and the figure are read from the results folder.
#
# | chapter | reproduces | scale |
# |---|---|---|
# | {doc}`nqm_theory` | Theorems 1-4 and Appendix A: SymPy derivations, each checked numerically | exact, every profile |
# | {doc}`nqm_experiments` | Figures 1-3 and the three final losses of Section 2.3 | the paper's in `quick` and `paper`; `smoke` shortens the fits |
# | {doc}`smd` | Algorithm 1 and Equations 8-9: hypergradients against finite differences and reverse mode | small models |
# | {doc}`offline_mnist` | Figures 5-6 and the two headline claims of Section 3.2 | time scales divided by 10 in `quick`; the paper's time scale in the archived runs (the paper's 2,500-schedule design, two seeds) |
# | {doc}`online_smd` | Figures 7-8: the collapse and the blow-up of the learning rate | shortened in `quick`; MNIST at the paper's scale in the archived run |
# | {doc}`beyond` | beyond the paper: the bias against the horizon, remedies, the explorer | the archived paper-design MNIST run next to the live one |
# | {doc}`beyond_pes` | beyond the paper: truncated hypergradients against PES | small MNIST part |
# | {doc}`nqm_prediction` | beyond the paper: the network's own noisy quadratic as a predictor of its best schedules | the archived offline run |
#
# The paper states its headline results as numbers (the Section 2.3 losses) or as
# claims with a bound (Section 3.2: "more than two orders of magnitude", "more than
# 1000 times"). The table below shows the relative gap for the former and whether the
# claim holds in this run for the latter. Figures 7 and 8 state no number; their
# chapter compares the curves' shapes.
#
# Some numbers are *calibrated*, not predicted: the paper leaves a parameter open, and we
# chose it so that one reported number comes out right. Section 2.3's greedy loss is one:
# the initial mean $c_0$ of the noisy quadratic was set so that the greedy schedule ends at
# the paper's value. Such a number is shown, marked "calibrated", and never counted as a
# match; the numbers computed with that choice (the fixed and optimized losses) are
# predictions and are counted.

# %% tags=["parameters", "remove-cell"]
profile = "quick"
device = "auto"
seed = 0
data_root = None
results = None

# %% tags=["remove-input"]
from shortbias_lib.notebook import setup

context = setup(profile, device, seed, data_root, results)

# %%
# %matplotlib inline
from IPython.display import Markdown

from shortbias_lib.experiments import figure3 as nq
from shortbias_lib.experiments.offline import config as offline_config
from shortbias_lib.experiments.online import experiment as online
from shortbias_lib.experiments.online import claims as online_claims
from shortbias_lib.chapters import online_smd as online_facts
from shortbias_lib import report
from shortbias_lib.notebook import glue_facts
from shortbias_lib.runs import REPO_ROOT, load_result, result_path

# %% [markdown]
# The comparisons of this run, read from its results folder:

# %%
comparisons = report.collect(context.results_dir, profile)
report.comparison_table(comparisons)

# %% tags=["remove-cell"]
glue_facts(report.comparison_facts(comparisons))

# %% [markdown]
# In this run, {glue:text}`repro_values_close` of the {glue:text}`repro_values` predicted
# values are matched within 10%, and {glue:text}`repro_claims_held` of the
# {glue:text}`repro_claims` claimed bounds hold; {glue:text}`repro_calibrated` calibrated
# number(s) are left out of these counts ({glue:md}`repro_calibrated_list`). The claims are
# those of Section 3.2: in a profile smaller than `paper` the offline experiment runs at a
# fraction of the paper's time scale, and a claim it does not meet there is not a test of the
# paper's claim at full scale; the [offline chapter](offline_mnist) shows the sizes and what
# the run does show. The figure shows the same comparison on a logarithmic scale, one row per
# reported number.

# %% mystnb={"figure": {"caption": "Each reproduced number (cross; green where it agrees: within 10% of a value, above a claimed bound; grey where it was calibrated to the paper's value) next to the paper's value (circle) or claimed lower bound (triangle), on a log scale. All points come from the result files of this run.", "name": "fig-reproducibility"}}
if comparisons:
    report.comparison_figure(comparisons)

# %% [markdown]
# ## The noisy quadratic's open choices
#
# Besides $c_0$, Section 2.3 leaves the condition number $\kappa$ of its spectrum open. We use
# {glue:text}`repro_kappa:.0f`, a round value that was not fitted to any reported number. The
# Figure 3 run also recalibrates $c_0$ for other condition numbers and records the fixed
# schedule's prediction at each:

# %%
figure3_file = result_path("figure3", profile, seed, results)
figure3 = load_result(figure3_file)[0] if figure3_file.exists() else None
report.kappa_table(figure3, nq.PAPER_FINAL_LOSSES["fixed"])

# %% tags=["remove-cell"]
glue_facts(report.kappa_facts(figure3, nq.FIGURE3_SETUP["kappa"], nq.PAPER_FINAL_LOSSES["fixed"]))

# %% [markdown]
# {glue:md}`repro_kappa_effect`
#
# Where each number came from: the provenance recorded in every result file (git commit,
# device, seed and time of the run; the files also record the package versions and host).

# %%
report.provenance_table(context.results_dir, profile)

# %% [markdown]
# ## The archived runs at the paper's time scale
#
# The offline experiment at the paper's time scale (20k training steps, $K$ = 5000) takes
# longer than a book build allows, so it was run from the shell and its result files are
# committed in `archive/`: the paper's design (2,500 random schedules, computed on a GPU;
# seeds 0 and 1) and a CPU design with fewer, better placed samples (the
# [offline chapter](offline_mnist) shows them and gives the commands that regenerate them;
# tests recompute slices of them with the current code). Their claims carry 95% bootstrap
# intervals over the sampled schedules: a claim holds only if its whole interval lies above
# the paper's bound. An estimate above the bound whose interval reaches below it leaves the
# claim undecided:

# %%
example = report.Comparison("example", "a claimed ratio", ours=150.0, paper=100.0,
                            source="-", kind="lower_bound", low=90.0, high=210.0)
example.verdict, example.agreement

# %% [markdown]
# The archived runs' comparisons:

# %%
archive_dir = REPO_ROOT / offline_config.ARCHIVE_DIR
archived_profiles = ("archive_gpu", "archive")
archived = report.collect(archive_dir, archived_profiles)
report.comparison_table(archived)

# %% tags=["remove-cell"]
glue_facts(report.archive_claim_facts(archived))

# %% [markdown]
# At the paper's time scale {glue:text}`repro_archive_held` of the
# {glue:text}`repro_archive_claims` claims of the archived runs hold with their whole interval
# ({glue:text}`repro_archive_verdicts`).

# %% mystnb={"figure": {"caption": "The archived runs' claims at the paper's time scale: our estimate (cross) with its 95% bootstrap interval (bar) against the paper's claimed lower bound (triangle), log scale.", "name": "fig-reproducibility-archive"}}
if archived:
    report.comparison_figure(archived)

# %%
report.provenance_table(archive_dir, archived_profiles)

# %% [markdown]
# ## Online SMD at the paper's scale (archived)
#
# Figures 7 and 8 state no number, only shapes: with a stochastic 5-step lookahead SMD
# drives the learning rate far below the hand-tuned one whatever it starts from, and
# training then makes slow progress; with a deterministic lookahead the rate grows and
# training becomes unstable. The [online chapter](online_smd) states a criterion for each
# claim and decides it from the archived MNIST runs at the paper's scale (one file per run,
# in `archive/checkpoints`; their provenance is below).

# %%
online_runs, _, online_missing = online.archived_runs(seed=0)
online_decided = online_claims.decide(online_runs, online_facts.ARCHIVE_ADAPT_UNTIL)
Markdown(report.markdown_table(["claim", "criterion", "measured", "verdict"],
                               online_claims.claims_rows(online_decided)))

# %% tags=["remove-cell"]
glue_facts(online_facts.archive_facts(online_runs, online_missing))

# %% [markdown]
# Runs archived so far: {glue:text}`arch_runs`.

# %%
report.provenance_table(archive_dir / "checkpoints", "archive")

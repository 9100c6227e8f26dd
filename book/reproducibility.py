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
# # Reproducibility
#
# This page collects, from the result files written by the chapters of this run, each
# number the paper reports next to ours, and says how close we get. Nothing here is
# typed in: the table and the figure are read from the results folder.
#
# | chapter | reproduces | scale |
# |---|---|---|
# | {doc}`nqm_theory` | Theorems 1-4 and Appendix A: SymPy derivations, each checked numerically | exact, every profile |
# | {doc}`nqm_experiments` | Figures 1-3 and the three final losses of Section 2.3 | the paper's, every profile |
# | {doc}`smd` | Algorithm 1 and Equations 8-9: hypergradients against finite differences and reverse mode | small models |
# | {doc}`offline_mnist` | Figures 5-6 and the two headline claims of Section 3.2 | time scales divided by 10 in `quick` |
# | {doc}`online_smd` | Figures 7-8: the collapse and the blow-up of the learning rate | shortened in `quick` |
# | {doc}`beyond` | beyond the paper: the bias against the horizon, remedies, PES | small MNIST part |
#
# The paper states its headline results as numbers (the Section 2.3 losses) or as
# claims with a bound (Section 3.2: "more than two orders of magnitude", "more than
# 1000 times"). The table below shows the relative gap for the former and whether the
# claim holds in this run for the latter. Figures 7 and 8 state no number; their
# chapter compares the curves' shapes.

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
from shortbias_lib import report

comparisons = report.collect(context.results_dir, profile)
report.comparison_table(comparisons)

# %% [markdown]
# The figure shows the same comparison on a logarithmic scale: each bar pair is one
# reported number, ours against the paper's.

# %% mystnb={"figure": {"caption": "Each reproduced number next to the paper's (log scale). Bars come from the result files of this run.", "name": "fig-reproducibility"}}
if comparisons:
    report.comparison_figure(comparisons)

# %% [markdown]
# Where each number came from: the provenance recorded in every result file (git commit,
# profile, device, seed and time of the run).

# %% tags=["remove-input"]
report.provenance_widget(context.results_dir, profile)

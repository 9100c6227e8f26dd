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
# # Understanding short-horizon bias
#
# PLACEHOLDER intro.

# %% tags=["parameters", "remove-cell"]
profile = "quick"
device = "auto"
seed = 0
data_root = None
results = None

# %% tags=["remove-input"]
from shortbias_lib.notebook import setup

context = setup(profile, device, seed, data_root, results)

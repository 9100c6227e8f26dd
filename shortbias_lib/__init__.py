"""Reproduction library for Wu, Ren, Liao & Grosse (ICLR 2018),
"Understanding Short-Horizon Bias in Stochastic Meta-Optimization".

One module per idea; the book's notebooks narrate and call these modules,
and ``python -m shortbias_lib`` runs the same experiments from the shell.
"""

__version__ = "0.1.0"

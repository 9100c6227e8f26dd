"""Reproduction library for Wu, Ren, Liao & Grosse (ICLR 2018),
"Understanding Short-Horizon Bias in Stochastic Meta-Optimization".

The book's notebooks narrate and call these modules, and ``python -m shortbias_lib`` runs the
same experiments from the shell. The map, from the ground floor up (a layer imports only
itself and the layers listed before it):

Ground floor
    ``errors`` (one-line, actionable exceptions), ``profiles`` (smoke, quick, paper: one code
    path, three sizes), ``progress`` (progress bars that stay quiet in notebooks), ``locks``
    (one run per result file), ``runs`` (devices, tensors as arrays, provenance, atomic result files,
    run-or-resume, partial checkpoints, CPU thread settings), ``data`` (MNIST and CIFAR-10),
    ``report`` (Markdown sentences and tables; the paper's numbers next to ours, read from result files),
    ``checks`` (configuration checks several experiments share).
``engine/``
    Networks, SGD with momentum, minibatches and seeds, schedules, the paper's MLP and warm
    start, hypergradients and stochastic meta-descent (Algorithm 1).
``nqm/``
    The noisy quadratic model of Section 2: exact dynamics, greedy and optimized schedules,
    fits, simulation, the bias across horizons, PES, a network's local quadratic, the
    symbolic derivations.
``plots/``
    Plotting no experiment owns: the book's style and panels, the schedule explorer.
``experiments/``
    One per experiment: ``figure3`` (Section 2), ``offline/`` (Section 3.2), ``online/``
    (Section 3.3), ``precision/`` (hypergradient precision), ``beyond/`` (beyond the paper),
    each with its configuration, run, analysis and figures.
Top floor
    ``notebook`` (what every chapter does first), ``chapters/`` (each chapter's facts: the
    numbers and verdicts its prose quotes) and ``__main__`` (the command line).

Rules, checked by ``tests/test_layout.py`` from the import statements: no experiment imports
another; no module outside ``experiments/`` imports one, except ``__main__`` and ``chapters/``.
What experiments share lives in the engine and the ground floor.
"""

__version__ = "0.1.0"

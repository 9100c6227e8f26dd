"""The SMD chapter's sizes, its hypergradient checks, and the facts each of its sections quotes.

Each ``*_facts`` function turns one section's measurements into the numbers and verdicts
its prose quotes, as a dict for ``notebook.glue_facts``; a check the prose calls passed
raises :class:`HypergradientCheckFailed` when it did not.
"""

import numpy as np
import torch

from ..engine import hyperparams, models, training
from ..engine.reference import compare_hypergradients
from ..report import markdown_table

SIZES = {
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
}
"""The chapter's sizes per profile (``profiles.pick(profile, SIZES)``)."""

REVERSE_TOLERANCE = 1e-8
"""Largest relative difference of forward to reverse mode the checks accept: both are exact
derivatives, so in float64 they differ by rounding only."""

FINITE_DIFFERENCE_TOLERANCE = 1e-3
"""Largest relative difference of forward mode to central finite differences the checks accept:
loose, because the differences carry their own truncation and rounding error (1e-7 to 1e-5
measured at ``eps = 1e-6``, more where a ReLU switches within ``eps``); a wrong tangent gives
differences of order one, and reverse mode (:data:`REVERSE_TOLERANCE`) is the tight check."""


class HypergradientCheckFailed(AssertionError):
    """Forward mode disagreed with finite differences or reverse mode beyond tolerance."""


def check_cases(mnist, cifar, sizes, seed):
    """Forward mode against finite differences and reverse mode (``reference.compare_hypergradients``)
    in float64, learning ``(log effective rate, log(1-mu), log beta)`` of an inverse-time
    schedule from a random state with a nonzero velocity: the MLP at lookaheads
    ``sizes["check_T"]`` and a narrow CNN at ``sizes["cnn_T"]``, stochastic (a fresh minibatch per
    step, the meta-objective on another) and deterministic (one minibatch throughout), in both
    conventions. Returns one dict per case."""
    gen = torch.Generator().manual_seed(seed)
    mlp = models.mlp_init(gen, sizes=sizes["mlp_check"], init_std=0.1, dtype=torch.float64)
    cnn = models.cnn_init(gen, init_std=0.1, dtype=torch.float64, **sizes["cnn_check"])
    hyper = hyperparams.Hyperparameters(0.05, 0.9, beta=1.0, K=10, learn=("lr", "momentum", "beta"))
    cases = [("MLP", models.mlp_apply, mlp, mnist, T) for T in sizes["check_T"]]
    cases += [("CNN", models.cnn_apply, cnn, cifar, T) for T in sizes["cnn_T"]]
    B, rows = sizes["check_batch"], []
    for name, apply, params, data, T in cases:
        x, y, n = data.images.double(), data.labels, len(data.labels)
        velocity = tuple(0.01 * torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params)
        state = training.init_state(params, velocity, step=5)
        lookaheads = {"stochastic": ([(x[i * B % n:i * B % n + B], y[i * B % n:i * B % n + B]) for i in range(T)],
                                     [(x[n - B:], y[n - B:])]),
                      "deterministic": ([(x[:B], y[:B])] * T, [(x[:B], y[:B])])}
        for lookahead, (look, evaluation) in lookaheads.items():
            for convention in ("paper", "heavy_ball"):
                out = compare_hypergradients(apply, state, hyper, look, evaluation, convention)
                rows.append(dict(model=name, T=T, lookahead=lookahead, convention=convention, **out))
    return rows


def check_table(rows):
    """The rows of :func:`check_cases` as a Markdown table."""
    vec = lambda v: "(" + ", ".join(f"{a:+.4e}" for a in v) + ")"  # noqa: E731
    return markdown_table(
        ["model", "T", "lookahead", "convention", "forward mode", "finite differences", "rel. diff. to FD",
         "rel. diff. to reverse"],
        [(r["model"], r["T"], r["lookahead"], r["convention"], vec(r["forward"]), vec(r["finite_difference"]),
          f"{r['rel_err_fd']:.1e}", f"{r['rel_err_reverse']:.1e}") for r in rows])


def check_facts(rows):
    """The checks' facts: their number and the largest differences to each reference; raises
    when one exceeds :data:`REVERSE_TOLERANCE` or :data:`FINITE_DIFFERENCE_TOLERANCE`."""
    worst_fd = max(r["rel_err_fd"] for r in rows)
    worst_rev = max(r["rel_err_reverse"] for r in rows)
    if worst_rev > REVERSE_TOLERANCE or worst_fd > FINITE_DIFFERENCE_TOLERANCE:
        raise HypergradientCheckFailed(f"forward mode differs from reverse mode by {worst_rev:.1e} and from "
                                       f"finite differences by {worst_fd:.1e}")
    return {"smd_n_checks": len(rows), "smd_worst_fd": float(worst_fd), "smd_worst_rev": float(worst_rev)}


def memory_table(horizons, forward, reverse):
    """Peak memory per lookahead length, as a Markdown table."""
    return markdown_table(["T", "reverse mode (MiB)", "forward mode (MiB)"],
                          [(T, f"{r:.1f}", f"{f:.1f}") for T, r, f in zip(horizons, reverse, forward)])


def memory_facts(horizons, forward, reverse, mlp_sizes):
    """Memory against lookahead: reverse mode's growth per step (least squares) and what it
    gives at Section 3.2's 20k steps, and forward mode's range."""
    slope = float(np.polyfit(horizons, reverse, 1)[0])
    return {"smd_rev_slope": slope, "smd_rev_20k_gib": slope * 20000 / 1024, "smd_fwd_min": float(np.min(forward)),
            "smd_fwd_max": float(np.max(forward)), "smd_mem_sizes": "-".join(map(str, mlp_sizes))}


def long_lookahead_facts(forward_mib, reverse_slope, long_T):
    """Forward mode at 100 and ``long_T`` steps (``forward_mib``: T -> MiB), the record of
    per-step losses that grows with T by design (8 bytes a step), and reverse mode's
    extrapolated cost (``reverse_slope`` MiB a step) at ``long_T``."""
    return {"smd_long_T": f"{long_T:,}", "smd_long_short": float(forward_mib[100]),
            "smd_long_long": float(forward_mib[long_T]), "smd_loss_log": 8 * long_T / 2 ** 20,
            "smd_small_slope": float(reverse_slope), "smd_small_rev_long": float(reverse_slope * long_T)}


COST_LABELS = {"plain": "plain SGD-momentum step", "lr": "hypergradient, 1 hyperparameter",
               "lr+momentum": "hypergradient, 2 hyperparameters",
               "lr, double backward": "hypergradient, 1 hyperparameter, double backward"}


def cost_table(costs):
    """``measure.step_costs``'s seconds per step as a Markdown table, with ratios to a plain step."""
    return markdown_table(["step", "ms", "ratio to plain"],
                          [(COST_LABELS[k], f"{1e3 * v:.3f}", f"{v / costs['plain']:.2f}") for k, v in costs.items()])


def cost_facts(costs):
    """Hypergradient steps in plain steps: one and two hyperparameters, and the second's increment."""
    plain = costs["plain"]
    return {"smd_ratio1": costs["lr"] / plain, "smd_ratio2": costs["lr+momentum"] / plain,
            "smd_ratio_increment": (costs["lr+momentum"] - costs["lr"]) / plain}


def run_facts(runs, start_effective_lr, meta_steps):
    """Where ``meta_steps`` meta steps of Algorithm 1 took the effective learning rate
    ``alpha/(1-mu)`` from ``start_effective_lr`` under each lookahead (``runs``: kind ->
    ``hypergrad.SMDResult``): its last value, the last momentum, and whether it rose or fell."""
    out = {"smd_n_meta": meta_steps}
    for kind, run in runs.items():
        eff = float(run.lrs[-1] / (1 - run.momenta[-1]))
        out |= {f"smd_{kind}_eff": eff, f"smd_{kind}_mu": float(run.momenta[-1]),
                f"smd_{kind}_direction": "rose" if eff > start_effective_lr else "fell"}
    return out

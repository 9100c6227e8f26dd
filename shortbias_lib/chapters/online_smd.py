"""The numbers and verdicts the online chapter (Section 3.3) quotes: one function per section,
each returning a record ``{glue name: value}`` for :func:`shortbias_lib.notebook.glue_facts`.

Every function takes runs (``{key: OnlineRun}`` of one data set, with its baseline) or
result files' contents, so the tests can feed it small made-up runs whose answers are known.
"""

import math

import numpy as np

from ..experiments.online import experiment as online, claims as online_claims
from ..engine.hyperparams import BOUNDS
from ..experiments.online.loop import OnlineSettings
from ..profiles import pick

# The step where the archive's adaptation stops (the first half of its 50,000 steps).
ARCHIVE_ADAPT_UNTIL = online.SIZES["archive"]["mnist"]["steps"] // 2
# What the paper runs beyond the sizes table's rows, in words (its figures, not its code).
PAPER_INITIAL_RATES = {
    "initial $\\alpha$, stochastic lookahead": "MNIST: 0.001-0.1 (5 values); CIFAR-10: 0.0005-0.01 (4 values)",
    "initial $\\alpha$, deterministic lookahead": "CIFAR-10: the same 4 values",
}


def describe_sizes(sizes):
    """One data set's sizes (an entry of :data:`online.SIZES`) as ``{row name: text}``."""
    def rates(lrs):
        return ", ".join(f"{x:g}" for x in lrs) or "none"

    evaluated = ("all training examples" if sizes["n_eval_train"] is None
                 else f"first {sizes['n_eval_train']:,} training examples")
    return {
        "steps (adaptation during the first half)": f"{sizes['steps']:,}",
        "meta steps $M$ per adaptation, every ... steps": f"{sizes['meta_steps']}, every {sizes['adapt_every']}",
        "Adam meta learning rate": f"{sizes['meta_lr']:g}",
        "lookahead $T$": str(sizes["horizon"]),
        "batch size": str(sizes["batch_size"]),
        "training examples": "all" if sizes["n_train"] is None else f"first {sizes['n_train']:,}",
        "training loss measured on": f"{evaluated}, every {sizes['eval_every']} steps",
        "test examples": "all" if sizes["n_test"] is None else f"first {sizes['n_test']:,}",
        "initial $\\alpha$, stochastic lookahead": rates(sizes["init_lrs"]),
        "initial $\\alpha$, deterministic lookahead": rates(sizes["det_lrs"]),
    }


def sizes_table(profile):
    """``(header, rows)``: ``profile``'s sizes on MNIST and CIFAR-10 next to the paper's."""
    plan, paper = pick(profile, online.SIZES), pick("paper", online.SIZES)
    mnist, cifar = describe_sizes(plan["mnist"]), describe_sizes(plan["cifar10"])
    papers = dict(describe_sizes(paper["mnist"]), **PAPER_INITIAL_RATES)
    return (["", "MNIST, this run", "CIFAR-10, this run", "paper (both)"],
            [(key, mnist[key], cifar[key], papers[key]) for key in mnist])


def sizes_facts(profile):
    """Section "Sizes of this run": how far Adam can move ``u`` in one adaptation (meta steps
    times meta learning rate) in ``profile`` on each data set and in the paper."""
    plan, paper = pick(profile, online.SIZES), pick("paper", online.SIZES)
    return {f"online_reach_{name}": float(sizes["meta_steps"] * sizes["meta_lr"])
            for name, sizes in (("mnist", plan["mnist"]), ("cifar", plan["cifar10"]),
                                ("paper", paper["mnist"]))}


def run_facts(arrays, meta):
    """The live run (a :func:`online.run_online` file's arrays and provenance): each data set's
    source and the minutes of compute its runs took."""
    seconds = sum(run.seconds for run in online.runs_from_arrays(arrays).values())
    return {"mnist_source": meta["config"]["mnist"]["source"],
            "cifar_source": meta["config"]["cifar10"]["source"], "online_minutes": seconds / 60}


def baseline_of(runs):
    """The hand-tuned run among ``runs``."""
    found = [r for r in runs.values() if r.mode == "baseline"]
    if len(found) != 1:
        raise ValueError(f"runs must hold exactly one baseline run; got {len(found)}")
    return found[0]


def versus_baseline(runs, mode):
    """How the ``mode`` runs ended against the baseline, for sentences chosen by the numbers.

    Returns a dict: ``settled`` (each run's effective rate at the end of adaptation over
    the baseline's), ``loss`` (each final training loss over the baseline's), their
    medians (NaN without finite values), ``n`` runs, ``n_below`` settled below the
    baseline's rate and ``n_worse`` ending with a higher training loss.
    """
    base = baseline_of(runs)
    base_eff = base.init_eff_lr
    chosen = [r for r in runs.values() if r.mode == mode]
    settled = np.array([r.settled_lr / base_eff for r in chosen])
    loss = np.array([r.final_train_loss / base.final_train_loss for r in chosen])

    def median(values):
        values = values[np.isfinite(values)]
        return float(np.median(values)) if values.size else float("nan")

    return {"settled": settled, "loss": loss, "settled_median": median(settled),
            "loss_median": median(loss), "base_eff": float(base_eff), "n": len(chosen),
            "n_below": int(np.sum(settled < 1)), "n_worse": int(np.sum(loss > 1))}


def early_rise(runs):
    """Median over the stochastic runs of the peak effective rate in the first quarter of
    training over the initial one (NaN without stochastic runs): above 1 when SMD first raised it."""
    rises = [np.nanmax(r.eff_lr[:max(1, r.steps // 4)]) / r.init_eff_lr
             for r in runs.values() if r.mode == "stochastic"]
    return float(np.median(rises)) if rises else float("nan")


def stochastic_facts(mnist, cifar):
    """Section "Figure 7": how the stochastic-lookahead runs of each data set ended against
    the baseline (:func:`versus_baseline`) and whether SMD first raised the rate."""
    facts = {}
    for name, runs in (("mnist", mnist), ("cifar", cifar)):
        ended = versus_baseline(runs, "stochastic")
        rise = early_rise(runs)
        facts.update({
            f"{name}_sto_ratio": ended["settled_median"], f"{name}_sto_factor": 1 / ended["settled_median"],
            f"{name}_sto_below": f"{ended['n_below']} of {ended['n']}",
            f"{name}_sto_dir": "below" if ended["settled_median"] < 1 else "above",
            f"{name}_base_eff": ended["base_eff"], f"{name}_sto_loss_ratio": ended["loss_median"],
            f"{name}_sto_worse": f"{ended['n_worse']} of {ended['n']}",
            f"{name}_sto_rise": rise, f"{name}_sto_rise_word": "raised" if rise > 1 else "did not raise"})
    return facts


def archive_rows(runs, metas, missing):
    """Rows of the archive's table: its sizes, how many runs are archived, and each archived
    run's device, time, commit and minutes (``runs, metas, missing`` of :func:`online.archived_runs`)."""
    sizes = online.SIZES["archive"]["mnist"]
    rows = list(describe_sizes(sizes).items())
    rows += [("minibatches of the meta steps", f"{sizes['meta_batches']} at every meta step (Algorithm 1)"),
             ("runs archived", f"{len(runs)} of {len(runs) + len(missing)}"),
             ("not archived yet", ", ".join(f"`{k}`" for k in missing) or "none")]
    rows += [(f"`{key}`", f"{meta['device']}, {meta['time_utc']}, commit `{meta['git_commit']}`, "
              f"{runs[key].seconds / 60:.0f} min") for key, meta in metas.items()]
    return rows


def archive_facts(runs, missing, adapt_until=ARCHIVE_ADAPT_UNTIL):
    """Section "Figures 7 and 8 at the paper's scale": how many runs are archived and the
    verdict of each claim (:func:`online_claims.decide`; undecided while its runs are missing)."""
    claims = online_claims.decide(runs, adapt_until)
    return {"arch_runs": f"{len(runs)} of {len(runs) + len(missing)}",
            "arch_alike": online_claims.verdict(claims.alike),
            "arch_collapse": online_claims.verdict(claims.collapse),
            "arch_worse": online_claims.verdict(claims.worse),
            "arch_large": online_claims.verdict(claims.large),
            "arch_unstable": online_claims.verdict(claims.unstable),
            "arch_alike_factor": online_claims.ALIKE_SPREAD,
            **deterministic_ends(runs)}


def deterministic_ends(runs):
    """How the deterministic runs ended: how many reached the authors' upper bound on the
    effective rate (:data:`~shortbias_lib.engine.hyperparams.BOUNDS`), and the steps from which
    their loss stayed at chance level."""
    det = [r for r in runs.values() if r.mode == "deterministic"]
    bound = BOUNDS["lr"][1]
    at_bound = sum(np.nanmax(r.eff_lr[:r.last_finite_step]) >= bound * (1 - 1e-6) for r in det
                   if r.last_finite_step > 0)
    chance = sorted(r.chance_step() for r in det if r.chance_step() >= 0)
    if not chance:
        when = "in none of them"
    elif len(chance) == 1:
        when = f"from step {chance[0]:,} in 1 of {len(det)}"
    else:
        when = f"from a step between {chance[0]:,} and {chance[-1]:,} in {len(chance)} of {len(det)}"
    return {"arch_det_bound": f"{at_bound} of {len(det)}", "arch_rate_bound": bound, "arch_det_chance": when}


def earlier_facts(runs, adapt_until):
    """Section "The earlier archive": the verdicts of the claims it has runs for."""
    claims = online_claims.decide(runs, adapt_until)
    return {"earlier_alike": online_claims.verdict(claims.alike),
            "earlier_collapse": online_claims.verdict(claims.collapse),
            "earlier_worse": online_claims.verdict(claims.worse)}


def loss_at(run, step):
    """Training loss at the evaluation closest to ``step`` (NaN if the run had diverged by then)."""
    if run.eval_steps.size == 0 or (run.diverged and run.diverged_step <= step):
        return float("nan")
    return float(run.eval_losses[np.argmin(np.abs(run.eval_steps - step))])


def peak_over_base(runs, mode):
    """Largest finite effective rate of the ``mode`` runs over the baseline's (NaN without any)."""
    peak = max((np.nanmax(r.eff_lr[:r.last_finite_step]) for r in runs.values()
                if r.mode == mode and r.last_finite_step > 0), default=float("nan"))
    return float(peak / baseline_of(runs).init_eff_lr)


def deterministic_facts(mnist, cifar):
    """Section "Figure 8": per data set, the deterministic runs' peak rate over the baseline's,
    how many broke down for good (diverged or back at chance level), and their median training
    loss when adaptation stopped against the baseline's; on CIFAR-10 also the stochastic peak,
    and the evaluations at chance level after which a run is stopped."""
    facts = {"cifar_sto_peak": peak_over_base(cifar, "stochastic"), "chance_loss": math.log(10),
             "chance_patience": OnlineSettings().chance_patience}
    for name, runs in (("mnist", mnist), ("cifar", cifar)):
        det = [r for r in runs.values() if r.mode == "deterministic"]
        base = baseline_of(runs)
        half = base.steps // 2
        finite = [loss for loss in (loss_at(r, half) for r in det) if np.isfinite(loss)]
        if not det:
            det_loss = "not measured"
        elif finite:
            det_loss = f"{np.median(finite):.3g}"
        else:
            det_loss = "not defined (every deterministic run had diverged by then)"
        facts.update({
            f"{name}_det_peak": peak_over_base(runs, "deterministic"),
            f"{name}_det_broken": f"{sum(r.diverged or r.chance_step() >= 0 for r in det)} of {len(det)}",
            f"{name}_det_half_loss": det_loss,
            f"{name}_base_half_loss": loss_at(base, half) if det else float("nan")})
    return facts

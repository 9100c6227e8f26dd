"""Section 3.3's three claims about online SMD, decided from the runs' numbers.

The paper states them in words, without numbers (Figures 7 and 8):

(i) SMD runs started from widely different learning rates behave alike;
(ii) with a stochastic lookahead the rate is quickly driven to very small values, and
    training ends worse than with the hand-tuned rate;
(iii) with a deterministic lookahead the adapted rate becomes very large and training is
     unstable.

:func:`decide` measures each claim with the criteria below (module constants, so the
chapter can state them and a test can check the logic) and returns a :class:`Claims`
record; a claim whose runs are missing is left undecided (``None``), never guessed.
"""

import math
from dataclasses import dataclass

import numpy as np

from ...engine.hyperparams import BOUNDS

# (i) "alike": the settled effective rates of the stochastic runs span at most this factor
# (decided only when their initial rates span more)...
ALIKE_SPREAD = 10.0
# ... where "settled" is the geometric mean of alpha_eff over the last SETTLED_FRACTION
# of the adaptation phase (one run's value at one step is noisy).
SETTLED_FRACTION = 0.2
# (ii) "very small": settled at least this factor below the hand-tuned effective rate.
SMALL_FACTOR = 10.0
# (iii) "unstable": diverged, back at chance level, or an evaluation of the training loss
# above SPIKE_FACTOR times the lowest one before it.
SPIKE_FACTOR = 2.0


@dataclass(frozen=True)
class Claims:
    """The measured quantities and the verdict of each claim (``None``: runs missing)."""

    init_spread: float          # largest / smallest initial effective rate, stochastic runs
    settled: dict               # initial lr -> settled effective rate (geometric mean)
    settled_spread: float       # largest / smallest settled rate
    alike: object               # claim (i): True, False or None
    base_eff: float             # the hand-tuned effective rate
    settled_over_base: dict     # initial lr -> settled rate / base_eff
    below_step: dict            # initial lr -> first step with alpha_eff < base_eff / SMALL_FACTOR (-1: never)
    loss_over_base: dict        # initial lr -> final training loss / the baseline's
    error_over_base: dict       # initial lr -> final test error / the baseline's
    collapse: object            # claim (ii), first half: every settled rate very small
    worse: object               # claim (ii), second half: every final training loss above the baseline's
    det_peak_over_base: dict    # initial lr -> largest alpha_eff during adaptation / base_eff
    det_unstable: dict          # initial lr -> "diverged at step N", "chance from step N", "spike at step N" or ""
    large: object               # claim (iii), first half: every deterministic peak above base_eff
    unstable: object            # claim (iii), second half: every deterministic run unstable


def settled_rate(run, adapt_until):
    """Geometric mean of ``run.eff_lr`` over the last :data:`SETTLED_FRACTION` of the
    adaptation phase (steps before ``adapt_until``); NaN if the run diverged before."""
    start = int(adapt_until * (1 - SETTLED_FRACTION))
    window = run.eff_lr[start:adapt_until]
    if window.size == 0 or not np.all(np.isfinite(window)):
        return float("nan")
    return float(np.exp(np.mean(np.log(window))))


def momentum_pinned(run, rtol=1e-6):
    """Fraction of ``run``'s adaptations after which ``1 - mu`` sits at one of its bounds
    (:data:`~shortbias_lib.engine.hyperparams.BOUNDS`: mu = 0 or mu = 1 - 1e-4); NaN without adaptations."""
    steps = np.asarray(run.adapt_steps, dtype=np.int64)
    steps = steps[steps < run.last_finite_step]
    if steps.size == 0:
        return float("nan")
    low, high = BOUNDS["momentum"]
    one_minus = 1.0 - run.momentum[steps]
    pinned = np.isclose(one_minus, low, rtol=rtol, atol=0) | np.isclose(one_minus, high, rtol=rtol, atol=0)
    return float(np.mean(pinned))


def instability(run):
    """How ``run`` became unstable: ``"diverged at step N"``, ``"chance from step N"``,
    ``"spike at step N"`` (first evaluation above :data:`SPIKE_FACTOR` times the lowest
    before it), or ``""``."""
    if run.diverged:
        return f"diverged at step {run.diverged_step}"
    chance = run.chance_step()
    if chance >= 0:
        return f"chance from step {chance}"
    losses = np.asarray(run.eval_losses, dtype=float)
    if losses.size > 1:
        lowest = np.minimum.accumulate(losses)[:-1]
        spikes = np.flatnonzero(losses[1:] > SPIKE_FACTOR * lowest)
        if spikes.size:
            return f"spike at step {int(run.eval_steps[spikes[0] + 1])}"
    return ""


def _all(values):
    return None if not values else bool(all(values))


def decide(runs, adapt_until):
    """:class:`Claims` of ``runs`` (``{key: OnlineRun}`` of one data set, with its
    baseline); ``adapt_until`` is the step where adaptation stopped."""
    base = next((r for r in runs.values() if r.mode == "baseline"), None)
    if base is None:
        raise ValueError("runs must hold the hand-tuned baseline run")
    base_eff = base.init_eff_lr
    sto = sorted((r for r in runs.values() if r.mode == "stochastic"), key=lambda r: r.init_lr)
    det = sorted((r for r in runs.values() if r.mode == "deterministic"), key=lambda r: r.init_lr)

    settled = {r.init_lr: settled_rate(r, adapt_until) for r in sto}
    finite = [v for v in settled.values() if math.isfinite(v)]
    spread = max(finite) / min(finite) if len(finite) > 1 else float("nan")
    inits = [r.init_eff_lr for r in sto]
    init_spread = max(inits) / min(inits) if len(inits) > 1 else float("nan")
    # only a test if the initial rates span more than the factor allowed at the end
    alike = (None if len(sto) < 2 or not init_spread > ALIKE_SPREAD
             else bool(len(finite) == len(sto) and spread <= ALIKE_SPREAD))

    def first_below(run):
        below = np.flatnonzero(run.eff_lr[:adapt_until] < base_eff / SMALL_FACTOR)
        return int(below[0]) if below.size else -1

    over = {lr: v / base_eff for lr, v in settled.items()}
    loss = {r.init_lr: r.final_train_loss / base.final_train_loss for r in sto}
    error = {r.init_lr: r.test_error / base.test_error for r in sto}
    collapse = _all([v < 1 / SMALL_FACTOR for v in over.values()])
    worse = _all([v > 1 for v in loss.values()])

    def peak(run):
        stop = min(adapt_until, run.last_finite_step)
        return float(np.nanmax(run.eff_lr[:stop])) / base_eff if stop > 0 else float("nan")

    det_peak = {r.init_lr: peak(r) for r in det}
    det_unstable = {r.init_lr: instability(r) for r in det}
    return Claims(init_spread, settled, spread, alike, float(base_eff), over,
                  {r.init_lr: first_below(r) for r in sto}, loss, error, collapse, worse,
                  det_peak, det_unstable, _all([v > 1 for v in det_peak.values()]),
                  _all([bool(v) for v in det_unstable.values()]))


def verdict(value):
    """The reader's word for a claim's verdict: True, False or None (runs missing)."""
    return {True: "holds", False: "does not hold", None: "not decided (runs not archived yet)"}[value]


def claims_rows(claims):
    """Rows ``(claim, criterion, measured, verdict)`` of :func:`decide`'s record, formatted for
    :func:`~shortbias_lib.report.markdown_table`."""
    def listed(values, fmt):
        return ", ".join(f"{lr:g}: {fmt(v)}" for lr, v in values.items()) or "-"

    def ratio(v):
        return f"{v:.3g}x" if math.isfinite(v) else "n/a"

    return [
        ("(i) runs from different rates behave alike",
         f"settled $\\alpha_{{\\rm eff}}$ (geometric mean over the last {SETTLED_FRACTION:.0%} of "
         f"adaptation) spans at most a factor {ALIKE_SPREAD:g}, among runs whose initial rates span more",
         f"initial rates span {ratio(claims.init_spread)}, settled rates {ratio(claims.settled_spread)}",
         verdict(claims.alike)),
        ("(ii) stochastic: the rate collapses",
         f"every settled rate at least {SMALL_FACTOR:g}x below the hand-tuned one",
         "settled / hand-tuned: " + listed(claims.settled_over_base, ratio)
         + "; first step below a tenth of it: " + listed(claims.below_step, lambda s: f"{s:,}" if s >= 0 else "never"),
         verdict(claims.collapse)),
        ("(ii) stochastic: training ends worse",
         "every final training loss above the hand-tuned run's",
         "final loss / hand-tuned: " + listed(claims.loss_over_base, ratio)
         + "; test error / hand-tuned: " + listed(claims.error_over_base, ratio),
         verdict(claims.worse)),
        ("(iii) deterministic: the rate grows large",
         "every run's largest $\\alpha_{\\rm eff}$ during adaptation above the hand-tuned one",
         "largest / hand-tuned: " + listed(claims.det_peak_over_base, ratio),
         verdict(claims.large)),
        ("(iii) deterministic: training is unstable",
         f"every run diverges, returns to chance level, or has a training-loss evaluation above "
         f"{SPIKE_FACTOR:g}x the lowest before it",
         listed(claims.det_unstable, lambda s: s or "stable"),
         verdict(claims.unstable)),
    ]


def comparison_table(*archives):
    """``(header, rows)`` comparing the stochastic runs of several archives, each given as
    ``(name, runs, claims)``: per initial rate, each archive's settled effective rate, final
    loss over the hand-tuned one and :func:`momentum_pinned` (``"-"`` where it lacks the run)."""
    lrs = sorted({lr for _, _, claims in archives for lr in claims.settled})
    header = ["initial $\\alpha$"]
    for name, _, _ in archives:
        header += [f"settled $\\alpha_{{\\rm eff}}$, {name}", f"final loss / hand-tuned, {name}",
                   f"$\\mu$ at a bound, {name}"]
    rows = []
    for lr in lrs:
        row = [f"{lr:g}"]
        for _, runs, claims in archives:
            run = next((r for r in runs.values() if r.mode == "stochastic" and r.init_lr == lr), None)
            row += (["-"] * 3 if run is None else
                    [f"{claims.settled[lr]:.3g}", f"{claims.loss_over_base[lr]:.3g}",
                     f"{momentum_pinned(run):.1%} of adaptations"])
        rows.append(row)
    return header, rows

"""The numbers and verdicts each section of the hypergradient precision chapter quotes.

One function per section returns a small record ``{glue name: value}`` that the chapter glues in
one call (:func:`shortbias_lib.notebook.glue_facts`); Markdown values are for ``{glue:md}``. The
verdicts are chosen here (or in :mod:`shortbias_lib.experiments.precision.analysis`) from the numbers.
"""

import os

import numpy as np

from ..experiments.precision import experiment as precision, analysis as precision_analysis
from ..report import markdown

# A float32 loss that differs from float64's by more than this (relative) has left its path:
# well above the roundoff level of float32's losses (about 1e-7).
DEPARTURE_GAP = 2e-6


def settings_sentence(meta):
    """What produced a result, in one sentence: profile, seed, device, time, commit, and the
    measurement's settings."""
    config = meta["config"]
    others = config["batch_resamples"]
    return (f"profile `{meta['profile']}`, seed {meta['seed']}, run on {meta['device']} at "
            f"{meta['time_utc']} (commit `{meta['git_commit']}`, torch {meta['torch']}); horizons "
            f"{', '.join(str(h) for h in config['horizons'])}; meta-objective on "
            f"{config['objective_examples']} training examples; {config['perturbed_runs']} float64 and "
            f"{config['perturbed_runs_float32']} float32 runs from a start perturbed by "
            f"{config['perturbation']:.0e}; {others} other minibatch sequence{'s' if others != 1 else ''}")


def result_banner(archive_file, archived):
    """Markdown naming the archived result ``archived`` (``(arrays, meta)``) and how to regenerate
    it, or, where it is missing (``None``), a warning that the page shows its live run instead."""
    if archived is None:
        return (f"```{{warning}}\nThe archived result `{archive_file.name}` is missing; this page shows its "
                f"live run instead. Create it with `{precision.ARCHIVE_COMMAND}`.\n```")
    return (f"**Archived result** `{os.path.relpath(archive_file, precision.runs.REPO_ROOT)}`: "
            f"{settings_sentence(archived[1])}. Regenerate it with `{precision.ARCHIVE_COMMAND}`.")


def differences_facts(arrays, archived):
    """Section "Float32, float64 and perturbed starts": which result is shown (``archived``: the
    archive, else the live run), float32's largest relative difference at the first horizon and
    over all, the meta-objective's, and the headline and conclusion chosen from the verdicts."""
    rows = precision_analysis.table_rows(arrays)
    worst = max(rows, key=lambda row: row["float32_any"])
    return {"hp_shown": markdown("the archived result" if archived else "this page's live run"),
            "hp_T_first": rows[0]["horizon"], "hp_f32_first": rows[0]["float32_any"],
            "hp_f32_max": worst["float32_any"], "hp_T_f32_max": worst["horizon"],
            "hp_f32_loss_max": max(row["float32_any_loss"] for row in rows),
            "hp_headline": markdown(precision_analysis.headline(arrays)),
            "hp_conclusion": markdown(precision_analysis.conclusion(arrays))}


def split_horizons(rows, tol=precision_analysis.AGREE_TOL):
    """The horizons where some float32 computations (fast, double backward, perturbed start)
    agree with float64 to within ``tol`` and others do not (``rows``: ``table_rows``)."""
    names = ("float32", "float32_double", "float32_perturbed")
    return [row["horizon"] for row in rows
            if max(row[n] for n in names) > tol and min(row[n] for n in names) < tol]


def roundoff_facts(arrays):
    """Section "Roundoff that changes the path": whether float32 computations that differ only in
    roundoff disagree with each other somewhere (a sentence)."""
    split = split_horizons(precision_analysis.table_rows(arrays))
    if split:
        lottery = (f"At T = {', '.join(str(h) for h in split)} some of the float32 computations "
                   f"agree with float64 to within {precision_analysis.AGREE_TOL:.0%} and others do not, although "
                   "they differ only in the order of their operations: which hypergradient float32 gives there "
                   "is a matter of roundoff luck.")
    else:
        lottery = ("In this result the float32 computations agree with each other wherever they agree with "
                   "float64: no horizon shows one of them on a different path from the others.")
    return {"hp_lottery": markdown(lottery)}


def departure_sentences(gaps, threshold=DEPARTURE_GAP):
    """Where each run left float64's path: ``gaps`` maps a run's name to its per-step relative gap
    to the float64 losses; a run leaves at the first step whose gap exceeds ``threshold``."""
    sentences = []
    for name, gap in gaps.items():
        gap = np.asarray(gap, dtype=float)
        left = np.flatnonzero(gap > threshold)
        if len(left) == 0:
            sentences.append(f"The {name} run stayed within {gap.max():.1e} of float64 for all {len(gap)} steps.")
            continue
        step = int(left[0])
        before = float(gap[:step].max()) if step else float("nan")
        sentences.append(
            f"The {name} run left float64's path at step {step + 1}: its gap, at most {before:.1e} over all "
            f"earlier steps, was {gap[step]:.1e} at that step (a factor {gap[step] / before:.0f} in one step), "
            f"and it then grew to {gap[step:].max():.1%} (the largest over the remaining steps).")
    return " ".join(sentences)

"""The reproducibility summary: the paper's numbers next to ours, read from result files.

A result file takes part by holding three arrays of equal length:
``reported_names`` (what is compared, e.g. "final loss, optimized schedule"),
``reported_ours`` (our value) and ``reported_paper`` (the paper's value), and a
``chapter`` entry in its configuration. An optional fourth array,
``reported_kinds``, says how to compare each pair: ``"value"`` (the paper
reports a number; the default), ``"lower_bound"`` (the paper claims "more
than" this number, so the question is whether the claim holds in our run) or
``"calibrated"`` (a number we made equal to the paper's by choosing a free
parameter, e.g. Section 2.3's greedy loss through ``c0``: shown, never
counted as agreement).
Optional ``reported_low`` and ``reported_high`` give a 95% interval of ours;
a claim then holds only if the whole interval lies above the bound, fails
only if it lies below, and is undecided otherwise.

Archived runs (the paper's time scale, committed in ``archive/``) are
collected the same way with their profiles (``"archive"``, ``"archive_gpu"``),
apart from the live run's.

Partial checkpoints (``*.partial.npz``) are not results and are left out. A file
that cannot be read (damaged, or not written by this tool) is skipped by
:func:`collect` and listed, with the reason, by :func:`provenance_table`.
"""

import html
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ResultFileError
from .runs import devices_text, load_result, started_utc


@dataclass(frozen=True)
class Comparison:
    """One number the paper reports, and ours."""

    chapter: str
    quantity: str
    ours: float
    paper: float
    source: str
    kind: str = "value"
    low: float = math.nan
    high: float = math.nan

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}")

    @property
    def relative_gap(self):
        """``ours / paper - 1``: 0 is exact agreement."""
        return self.ours / self.paper - 1.0

    @property
    def paper_text(self):
        return f"> {self.paper:.4g}" if self.kind == "lower_bound" else f"{self.paper:.4g}"

    @property
    def has_interval(self):
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def ours_text(self):
        text = f"{self.ours:.4g}"
        return text + (f" [{self.low:.3g}, {self.high:.3g}]" if self.has_interval else "")

    @property
    def verdict(self):
        """For a lower bound: ``"holds"``, ``"not met"`` or (an interval across the bound) ``"undecided"``."""
        if self.kind != "lower_bound":
            raise ValueError("verdict is for kind 'lower_bound' comparisons")
        low, high = (self.low, self.high) if self.has_interval else (self.ours, self.ours)
        return "holds" if low > self.paper else "not met" if high <= self.paper else "undecided"

    @property
    def agrees(self):
        """Within 10% of a value; above a claimed bound (with its whole interval, if any);
        ``None`` for a calibrated number, which cannot agree or disagree."""
        if self.kind == "calibrated":
            return None
        return abs(self.relative_gap) <= 0.1 if self.kind == "value" else self.verdict == "holds"

    @property
    def agreement(self):
        """The relative gap for a value; whether the claim holds for a lower bound."""
        if self.kind == "calibrated":
            return f"{self.relative_gap:+.2%}, calibrated (matched by construction, not a test)"
        if self.kind == "value":
            return f"{self.relative_gap:+.2%}"
        return {"holds": "claim holds", "not met": "claim not met",
                "undecided": "undecided (interval spans the bound)"}[self.verdict]


KINDS = ("value", "lower_bound", "calibrated")


def comparisons_of(arrays, meta, source):
    """The comparisons stored in one result file's ``arrays`` (none if it holds no reported number)."""
    if "reported_names" not in arrays:
        return []
    chapter = meta.get("config", {}).get("chapter", source)
    n = len(arrays["reported_names"])
    kinds = arrays.get("reported_kinds", ["value"] * n)
    lows = arrays.get("reported_low", [math.nan] * n)
    highs = arrays.get("reported_high", [math.nan] * n)
    return [Comparison(chapter, str(name), float(ours), float(paper), source, str(kind),
                       float(low), float(high))
            for name, ours, paper, kind, low, high in zip(arrays["reported_names"], arrays["reported_ours"],
                                                          arrays["reported_paper"], kinds, lows, highs)]


def result_files(results_dir):
    """The result files in ``results_dir``, sorted; partial checkpoints (``*.partial.npz``) left out."""
    return sorted(path for path in Path(results_dir).glob("*.npz")
                  if not path.name.endswith(".partial.npz"))


def read_results(results_dir):
    """``(readable, unreadable)``: ``[(path, arrays, meta)]`` and ``[(path, reason)]`` of
    :func:`result_files` (a damaged file is reported, never raised)."""
    readable, unreadable = [], []
    for path in result_files(results_dir):
        try:
            arrays, meta = load_result(path)
        except (ResultFileError, OSError) as error:
            unreadable.append((path, str(error)))
            continue
        readable.append((path, arrays, meta))
    return readable, unreadable


def _profiles(profile):
    return (profile,) if isinstance(profile, str) else tuple(profile)


def collect(results_dir, profile):
    """All comparisons stored in ``results_dir`` by runs of ``profile`` (a name or several;
    unreadable files skipped)."""
    comparisons = []
    for path, arrays, meta in read_results(results_dir)[0]:
        if meta.get("profile") in _profiles(profile):
            comparisons += comparisons_of(arrays, meta, path.name)
    return comparisons


def markdown_table(header, rows):
    """The Markdown text of a table: ``header`` the column titles, ``rows`` one sequence of
    cells per row, each cell already formatted as the reader should see it (``str`` of it is
    written). The one table builder of the book's chapters."""
    def line(cells):
        return "| " + " | ".join(str(cell) for cell in cells) + " |"
    return "\n".join([line(header), "|---" * len(header) + "|", *(line(row) for row in rows)])


def markdown(text):
    """``text`` as a Markdown display object, so that a notebook shows it rendered and
    ``{glue:md}`` renders it in the prose. The one wrapper of the library (IPython is imported
    only when it is called)."""
    from IPython.display import Markdown

    return Markdown(text)


def comparison_table(comparisons):
    """A Markdown table of the comparisons (displayed in a notebook)."""
    if not comparisons:
        return markdown("No result file of this profile holds a reported number yet.")
    # from several files, each row names its file; from one, its chapter
    head, where = (("result file", lambda c: f"`{c.source}`") if _several_sources(comparisons)
                   else ("chapter", lambda c: c.chapter))
    return markdown(markdown_table([head, "quantity", "paper", "ours [95% interval]", "agreement"],
                                   [(where(c), c.quantity, c.paper_text, c.ours_text, c.agreement)
                                    for c in comparisons]))


def _several_sources(comparisons):
    return len({c.source for c in comparisons}) > 1


def comparison_facts(comparisons):
    """The reproducibility page's summary of a run's comparisons: how many predicted values
    agree within 10%, how many claimed bounds hold, and which numbers were calibrated (a
    Markdown list, left out of both counts)."""
    claims = [c for c in comparisons if c.kind == "lower_bound"]
    values = [c for c in comparisons if c.kind == "value"]
    calibrated = [c for c in comparisons if c.kind == "calibrated"]
    return {"repro_claims_held": sum(c.verdict == "holds" for c in claims), "repro_claims": len(claims),
            "repro_values_close": sum(c.agrees for c in values), "repro_values": len(values),
            "repro_calibrated": len(calibrated),
            "repro_calibrated_list": markdown("; ".join(f"{c.quantity} ({c.chapter})" for c in calibrated)
                                              or "none in this run")}


def archive_claim_facts(comparisons):
    """The archived runs' claims: how many hold with their whole interval, and each verdict."""
    claims = [c for c in comparisons if c.kind == "lower_bound"]
    return {"repro_archive_held": sum(c.verdict == "holds" for c in claims),
            "repro_archive_claims": len(claims),
            "repro_archive_verdicts": "; ".join(f"{c.source}, {c.quantity}: {c.agreement}" for c in claims)}


def kappa_table(figure3, paper_fixed):
    """Markdown table of the Figure 3 run's recalibration over condition numbers (``figure3``:
    its arrays, ``None`` if the run is missing): each kappa's ``c0`` and predicted fixed loss."""
    if figure3 is None:
        return markdown("No Figure 3 result of this profile was found; run the noisy quadratic chapter first.")
    return markdown(markdown_table(
        ["kappa", "calibrated c0", "predicted fixed final loss", "paper"],
        [(f"{k:g}", f"{c0:.3f}", f"{f:.2f}", f"{paper_fixed:.2f}")
         for k, c0, f in zip(figure3["kappas"], figure3["kappa_c0"], figure3["kappa_fixed"])]))


def kappa_facts(figure3, kappa, paper_fixed):
    """Section "The noisy quadratic's open choices": the condition number ``kappa`` used, and a
    sentence saying how far the other condition numbers of ``figure3`` (its arrays, or ``None``)
    move the predicted fixed-schedule loss from the paper's ``paper_fixed``."""
    facts = {"repro_kappa": kappa}
    if figure3 is None:
        return dict(facts, repro_kappa_effect=markdown("Without that run its effect is not measured here."))
    fixed = np.asarray(figure3["kappa_fixed"], dtype=float)
    fixed = fixed[np.isfinite(fixed)]
    return dict(facts, repro_kappa_effect=markdown(
        f"Over these condition numbers the prediction stays between {fixed.min():.2f} and "
        f"{fixed.max():.2f}, so the choice of kappa moves it by at most "
        f"{np.abs(fixed / paper_fixed - 1).max():.1%} of the paper's value."))


def comparison_figure(comparisons):
    """Ours against the paper's, one row per number, on a log axis.

    A reported value is a circle; a claimed lower bound ("more than ...") is a
    right-pointing triangle at the bound; our value is a cross, green where it agrees
    (within 10 percent of a value, above a bound with its whole interval), red
    otherwise and grey where it was calibrated to the paper's value, with its 95%
    interval as a bar where the file gives one.
    """
    if not comparisons:
        raise ValueError("comparisons is empty: there is nothing to draw")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.0, 2.0 + 0.55 * len(comparisons)), layout="constrained")
    colors = {True: "tab:green", False: "tab:red", None: "0.5"}
    for row, c in enumerate(comparisons):
        agrees = c.agrees
        axes.plot([c.paper, c.ours], [row, row], color="0.75", zorder=1)
        if c.has_interval:
            axes.errorbar(c.ours, row, xerr=[[c.ours - c.low], [c.high - c.ours]], fmt="none",
                          ecolor=colors[agrees], capsize=4, zorder=2)
        axes.scatter(c.paper, row, marker="o" if c.kind == "value" else ">", s=70,
                     facecolors="none", edgecolors="k", zorder=2)
        axes.scatter(c.ours, row, marker="x", s=70, color=colors[agrees], zorder=3)
    where = (lambda c: c.source.removesuffix(".npz")) if _several_sources(comparisons) else (lambda c: c.chapter)
    axes.set_yticks(range(len(comparisons)),
                    [textwrap.fill(f"{where(c)}: {c.quantity}", 40) for c in comparisons])
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("reported value (log scale)")
    handles = [axes.scatter([], [], marker="o", facecolors="none", edgecolors="k"),
               axes.scatter([], [], marker=">", facecolors="none", edgecolors="k"),
               axes.scatter([], [], marker="x", color="tab:green"),
               axes.scatter([], [], marker="x", color="tab:red"),
               axes.scatter([], [], marker="x", color="0.5")]
    figure.legend(handles, ["paper's value", "paper's claimed lower bound", "this run, agrees",
                            "this run, does not", "calibrated to the paper (not a test)"],
                  loc="outside lower center", ncols=2, fontsize="small", frameon=False)
    return figure


def provenance_table(results_dir, profile):
    """A Markdown table of the provenance of every result file of ``profile`` (a name or
    several), and a list of the files that could not be read (whatever their profile: it
    cannot be read either). A run resumed on another device lists each (``devices_text``)
    and the time its first leg started."""
    keys = ("git_commit", "device", "seed", "time_utc")
    rows = []
    readable, unreadable = read_results(results_dir)
    for path, _, meta in readable:
        if meta.get("profile") not in _profiles(profile):
            continue
        shown = {"device": devices_text(meta), "time_utc": started_utc(meta)}
        cells = [html.escape(str(shown[key] if key in shown else meta.get(key, ""))) for key in keys]
        rows.append([f"`{path.name}`", *cells])
    text = (markdown_table(["result file", *keys], rows) if rows
            else f"No result file of profile `{'`, `'.join(_profiles(profile))}` was found.")
    if unreadable:
        text += "\n\nThese files could not be read and were left out:\n\n" + "\n".join(
            f"- `{path.name}`: {html.escape(reason)}" for path, reason in unreadable)
    return markdown(text)

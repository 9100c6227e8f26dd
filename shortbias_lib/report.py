"""The reproducibility summary: the paper's numbers next to ours, read from result files.

A result file takes part by holding three arrays of equal length:
``reported_names`` (what is compared, e.g. "final loss, optimized schedule"),
``reported_ours`` (our value) and ``reported_paper`` (the paper's value), and a
``chapter`` entry in its configuration. An optional fourth array,
``reported_kinds``, says how to compare each pair: ``"value"`` (the paper
reports a number; the default) or ``"lower_bound"`` (the paper claims "more
than" this number, so the question is whether the claim holds in our run).
"""

import html
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .runs import load_result


@dataclass(frozen=True)
class Comparison:
    """One number the paper reports, and ours."""

    chapter: str
    quantity: str
    ours: float
    paper: float
    source: str
    kind: str = "value"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}")

    @property
    def relative_gap(self):
        """``ours / paper - 1``: 0 is exact agreement."""
        return self.ours / self.paper - 1.0

    @property
    def paper_text(self):
        return f"{self.paper:.4g}" if self.kind == "value" else f"> {self.paper:.4g}"

    @property
    def agreement(self):
        """The relative gap for a value; whether the claim holds for a lower bound."""
        if self.kind == "value":
            return f"{self.relative_gap:+.1%}"
        return "claim holds" if self.ours > self.paper else "claim not met"


KINDS = ("value", "lower_bound")


def collect(results_dir, profile):
    """All comparisons stored in ``results_dir`` by runs of ``profile``."""
    comparisons = []
    for path in sorted(Path(results_dir).glob("*.npz")):
        arrays, meta = load_result(path)
        if meta.get("profile") != profile or "reported_names" not in arrays:
            continue
        chapter = meta.get("config", {}).get("chapter", path.stem)
        kinds = arrays.get("reported_kinds", ["value"] * len(arrays["reported_names"]))
        for name, ours, paper, kind in zip(arrays["reported_names"], arrays["reported_ours"],
                                           arrays["reported_paper"], kinds):
            comparisons.append(Comparison(chapter, str(name), float(ours), float(paper),
                                          path.name, str(kind)))
    return comparisons


def comparison_table(comparisons):
    """A Markdown table of the comparisons (displayed in a notebook)."""
    from IPython.display import Markdown

    if not comparisons:
        return Markdown("No result file of this profile holds a reported number yet.")
    rows = ["| chapter | quantity | paper | ours | agreement |", "|---|---|---|---|---|"]
    rows += [f"| {c.chapter} | {c.quantity} | {c.paper_text} | {c.ours:.4g} | {c.agreement} |"
             for c in comparisons]
    return Markdown("\n".join(rows))


def comparison_figure(comparisons):
    """Horizontal bars, ours against the paper's, on a log scale."""
    if not comparisons:
        raise ValueError("comparisons is empty: there is nothing to draw")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 1.0 + 0.6 * max(1, len(comparisons))))
    positions = np.arange(len(comparisons))
    labels = [textwrap.fill(f"{c.chapter}: {c.quantity}", 40) for c in comparisons]
    axes.barh(positions - 0.2, [c.paper for c in comparisons], height=0.4,
              label="paper (value, or the bound it claims)")
    axes.barh(positions + 0.2, [c.ours for c in comparisons], height=0.4, label="this run")
    axes.set_yticks(positions, labels)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("reported value (log scale)")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25 - 0.3 / len(comparisons)), ncols=2,
                fontsize="small")
    figure.tight_layout()
    return figure


def provenance_widget(results_dir, profile):
    """An accordion with the provenance of every result file of ``profile``."""
    import ipywidgets

    panels, titles = [], []
    for path in sorted(Path(results_dir).glob("*.npz")):
        _, meta = load_result(path)
        if meta.get("profile") != profile:
            continue
        rows = "".join(f"<tr><td>{html.escape(key)}</td><td>{html.escape(str(meta[key]))}</td></tr>"
                       for key in ("git_commit", "profile", "device", "seed", "time_utc",
                                   "torch", "host") if key in meta)
        panels.append(ipywidgets.HTML(f"<table>{rows}</table>"))
        titles.append(path.name)
    accordion = ipywidgets.Accordion(children=panels, titles=tuple(titles))
    return accordion

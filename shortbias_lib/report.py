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
            return f"{self.relative_gap:+.2%}"
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
    """Ours against the paper's, one row per number, on a log axis.

    A reported value is a circle; a claimed lower bound ("more than ...") is a
    right-pointing triangle at the bound; our value is a cross, green where it agrees
    (within 10 percent of a value, above a bound) and red otherwise.
    """
    if not comparisons:
        raise ValueError("comparisons is empty: there is nothing to draw")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.55 * len(comparisons)))
    for row, c in enumerate(comparisons):
        agrees = abs(c.relative_gap) <= 0.1 if c.kind == "value" else c.ours > c.paper
        axes.plot([c.paper, c.ours], [row, row], color="0.75", zorder=1)
        axes.scatter(c.paper, row, marker="o" if c.kind == "value" else ">", s=70,
                     facecolors="none", edgecolors="k", zorder=2)
        axes.scatter(c.ours, row, marker="x", s=70, color="tab:green" if agrees else "tab:red",
                     zorder=3)
    axes.set_yticks(range(len(comparisons)),
                    [textwrap.fill(f"{c.chapter}: {c.quantity}", 40) for c in comparisons])
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("reported value (log scale)")
    handles = [axes.scatter([], [], marker="o", facecolors="none", edgecolors="k"),
               axes.scatter([], [], marker=">", facecolors="none", edgecolors="k"),
               axes.scatter([], [], marker="x", color="tab:green"),
               axes.scatter([], [], marker="x", color="tab:red")]
    axes.legend(handles, ["paper's value", "paper's claimed lower bound", "this run, agrees",
                          "this run, does not"], loc="upper center",
                bbox_to_anchor=(0.5, -0.2 - 0.2 / len(comparisons)),
                ncols=2, fontsize="small", frameon=False)
    figure.tight_layout()
    return figure


def provenance_table(results_dir, profile):
    """A Markdown table of the provenance of every result file of ``profile``."""
    from IPython.display import Markdown

    keys = ("git_commit", "device", "seed", "time_utc")
    rows = ["| result file | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for path in sorted(Path(results_dir).glob("*.npz")):
        _, meta = load_result(path)
        if meta.get("profile") != profile:
            continue
        cells = [html.escape(str(meta.get(key, ""))) for key in keys]
        rows.append(f"| `{path.name}` | " + " | ".join(cells) + " |")
    if len(rows) == 2:
        return Markdown(f"No result file of profile `{profile}` was found.")
    return Markdown("\n".join(rows))

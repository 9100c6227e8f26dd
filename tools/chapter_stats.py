"""How much of each chapter a reader sees: lines, code lines, hidden code, longest cell, widest line.

A code line is a non-blank line of a code cell. Hidden code sits in a cell tagged
``remove-cell``, ``remove-input``, ``hide-cell`` or ``hide-input``, except an exercise's
``solution`` cell, whose code a reader opens in its dropdown. The book's targets (issue
"chapters a student can read"): at most 450 lines, at most 30% of code lines hidden, no code
cell over 25 lines, no line of code a reader sees (any cell not tagged ``remove-cell`` or
``remove-input``: hidden and solution cells open) wider than the text column's 88 characters,
which would need a sideways scrollbar. Run ``python tools/chapter_stats.py`` for the table.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import jupytext

HIDING_TAGS = {"remove-cell", "remove-input", "hide-cell", "hide-input"}
REMOVING_TAGS = {"remove-cell", "remove-input"}
MAX_LINES, MAX_HIDDEN_SHARE, MAX_CELL_LINES, MAX_CODE_WIDTH = 450, 0.30, 25, 88


@dataclass(frozen=True)
class ChapterStats:
    path: Path
    lines: int
    code_lines: int
    hidden_lines: int
    longest_cell: int
    widest_line: int

    @property
    def hidden_share(self):
        return self.hidden_lines / max(self.code_lines, 1)

    def problems(self):
        """What breaks the targets, in words (empty when the chapter meets them)."""
        out = []
        if self.lines > MAX_LINES:
            out.append(f"{self.lines} lines (at most {MAX_LINES})")
        if self.hidden_share > MAX_HIDDEN_SHARE:
            out.append(f"{self.hidden_share:.0%} of code hidden (at most {MAX_HIDDEN_SHARE:.0%})")
        if self.longest_cell > MAX_CELL_LINES:
            out.append(f"a code cell of {self.longest_cell} lines (at most {MAX_CELL_LINES})")
        if self.widest_line > MAX_CODE_WIDTH:
            out.append(f"a code line of {self.widest_line} characters (at most {MAX_CODE_WIDTH})")
        return out


def chapter_stats(path):
    """Measure one chapter source (a Jupytext percent file)."""
    path = Path(path)
    notebook = jupytext.read(path)
    code = hidden = longest = widest = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        n = sum(1 for line in cell.source.splitlines() if line.strip())
        tags = set(cell.metadata.get("tags", ()))
        code += n
        longest = max(longest, n)
        if tags & HIDING_TAGS and "solution" not in tags:
            hidden += n
        if not tags & REMOVING_TAGS:
            widest = max([widest, *map(len, cell.source.splitlines())])
    return ChapterStats(path, len(path.read_text().splitlines()), code, hidden, longest, widest)


def main(paths):
    paths = paths or sorted(Path(__file__).resolve().parent.parent.glob("book/*.py"))
    failing = 0
    for path in paths:
        stats = chapter_stats(path)
        problems = stats.problems()
        failing += bool(problems)
        print(f"{stats.path.name:26s} {stats.lines:4d} lines  {stats.code_lines:4d} code  "
              f"{stats.hidden_share:4.0%} hidden  longest cell {stats.longest_cell:3d}  "
              f"widest line {stats.widest_line:3d}  "
              + ("; ".join(problems) or "ok"))
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

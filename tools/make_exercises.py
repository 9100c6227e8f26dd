"""Write the student notebooks: each chapter with exercises, its solutions removed.

    python tools/make_exercises.py            # -> exercises/<chapter>.ipynb
    python tools/make_exercises.py --out DIR

A chapter's exercise solutions are the cells tagged ``solution`` (the code in a collapsed
``hide-cell`` dropdown, the prose in a dropdown admonition); the student notebook is the
chapter without them, generated from the chapter's source, never kept by hand. It opens
with a note saying so, and keeps the chapter's parameters cell, so that it runs with the
same profiles (papermill or by hand, from the repository root).
"""

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_TAG = "solution"
EXERCISES_HEADING = "## Exercises"


def is_solution(cell):
    return SOLUTION_TAG in cell.metadata.get("tags", ())


def first_exercise_index(notebook):
    """Index of the markdown cell holding the ``## Exercises`` heading (``None`` if none)."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown" and any(line.strip() == EXERCISES_HEADING
                                                for line in cell.source.splitlines()):
            return index
    return None


def student_notebook(source):
    """The chapter at ``source`` (a Jupytext ``.py``) as a notebook without its solution
    cells, or ``None`` when the chapter has no exercises. Raises ``ValueError`` when a
    solution cell sits before the exercises heading (the part a student runs first)."""
    source = Path(source)
    notebook = jupytext.read(source)
    start = first_exercise_index(notebook)
    if start is None:
        return None
    early = [i for i, cell in enumerate(notebook.cells[:start]) if is_solution(cell)]
    if early:
        raise ValueError(f"{source.name}: cell {early[0]} is tagged {SOLUTION_TAG!r} but sits "
                         f"before the {EXERCISES_HEADING!r} heading")
    notebook.metadata.get("jupytext", {}).pop("formats", None)  # paired with nothing
    notebook.cells = [cell for cell in notebook.cells if not is_solution(cell)]
    note = nbformat.v4.new_markdown_cell(
        f"*Student version of `book/{source.name}`: the exercises' solutions are removed "
        "(see the published book for them). Run it from the repository root.*")
    notebook.cells.insert(0, note)
    return notebook


def write_all(out):
    """Write a student notebook for every chapter with exercises; return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted((ROOT / "book").glob("*.py")):
        notebook = student_notebook(source)
        if notebook is not None:
            path = out / f"{source.stem}.ipynb"
            nbformat.write(notebook, path)
            written.append(path)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "exercises",
                        help="folder for the student notebooks (default: exercises/)")
    args = parser.parse_args(argv)
    try:
        written = write_all(args.out)
    except ValueError as error:
        sys.exit(f"make_exercises: {error}")
    for path in written:
        print(f"make_exercises: wrote {path}")


if __name__ == "__main__":
    main()

"""The student notebooks of ``make exercises``: the chapters without their solutions."""

import importlib.util
import textwrap

import jupytext
import nbformat
import papermill
import pytest

from shortbias_lib.runs import REPO_ROOT


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_exercises = _load_tool("make_exercises")
CHAPTERS_WITH_EXERCISES = [
    path for path in sorted((REPO_ROOT / "book").glob("*.py"))
    if make_exercises.first_exercise_index(jupytext.read(path)) is not None]

TOY = textwrap.dedent('''\
    # %% [markdown]
    # # A toy chapter

    # %% tags=["parameters"]
    profile = "quick"

    # %%
    x = 2

    # %% [markdown]
    # ## Exercises
    #
    # **1.** What is x squared?

    # %% tags=["solution", "hide-cell"]
    answer = x ** 2
    assert answer == 4

    # %% [markdown] tags=["solution"]
    # ```{admonition} Solution
    # :class: dropdown
    # It is four.
    # ```

    # %% [markdown]
    # **2.** And x cubed?
    ''')


def test_student_notebook_drops_solutions_and_keeps_the_rest(tmp_path):
    source = tmp_path / "toy.py"
    source.write_text(TOY)
    student = make_exercises.student_notebook(source)
    text = "\n".join(cell.source for cell in student.cells)
    assert "answer" not in text and "It is four" not in text
    assert "What is x squared?" in text and "And x cubed?" in text and "x = 2" in text
    assert "Student version of `book/toy.py`" in student.cells[0].source
    assert any("parameters" in cell.metadata.get("tags", ()) for cell in student.cells)


def test_a_chapter_without_exercises_gives_no_student_notebook(tmp_path):
    source = tmp_path / "plain.py"
    source.write_text(TOY.split("# %% [markdown]\n# ## Exercises")[0])
    assert make_exercises.student_notebook(source) is None


def test_a_solution_before_the_exercises_is_refused(tmp_path):
    source = tmp_path / "early.py"
    source.write_text(TOY.replace('# %%\nx = 2', '# %% tags=["solution"]\nx = 2'))
    with pytest.raises(ValueError, match="early.py: cell .* before the '## Exercises' heading"):
        make_exercises.student_notebook(source)


@pytest.mark.parametrize("source", CHAPTERS_WITH_EXERCISES, ids=lambda p: p.stem)
def test_every_chapter_with_exercises_shows_its_solutions_code_and_the_student_copy_holds_none(source):
    chapter = jupytext.read(source)
    solutions = [cell for cell in chapter.cells if make_exercises.is_solution(cell)]
    assert any(cell.cell_type == "code" and "hide-cell" in cell.metadata["tags"] for cell in solutions), \
        f"{source.name}: no solution code in a hide-cell dropdown"
    student = make_exercises.student_notebook(source)
    assert not any(make_exercises.is_solution(cell) for cell in student.cells)
    kept = [cell.source for cell in student.cells[1:]]
    assert kept == [cell.source for cell in chapter.cells if not make_exercises.is_solution(cell)]


def test_make_exercises_writes_one_notebook_per_chapter_with_exercises(tmp_path):
    written = make_exercises.write_all(tmp_path)
    assert sorted(p.stem for p in written) == [p.stem for p in CHAPTERS_WITH_EXERCISES]
    for path in written:
        nbformat.validate(nbformat.read(path, as_version=4))


def _run_up_to_first_exercise(source, tmp_path, data_root):
    student = make_exercises.student_notebook(source)
    student.cells = student.cells[:make_exercises.first_exercise_index(student)]
    unexecuted = tmp_path / f"{source.stem}.ipynb"
    nbformat.write(student, unexecuted)
    papermill.execute_notebook(
        str(unexecuted), str(tmp_path / f"{source.stem}.out.ipynb"), kernel_name="python3",
        parameters={"profile": "smoke", "device": "cpu", "data_root": str(data_root),
                    "results": str(tmp_path / "results")},
        cwd=str(REPO_ROOT), progress_bar=False)


@pytest.mark.book
def test_a_student_notebook_runs_up_to_its_first_exercise(tmp_path, data_root):
    """One quick chapter, executed for real; the smoke book executes the same cells of every
    chapter (the student copy's cells before the exercises are the chapter's own)."""
    _run_up_to_first_exercise(REPO_ROOT / "book" / "nqm_theory.py", tmp_path, data_root)


@pytest.mark.slow
@pytest.mark.parametrize("source", CHAPTERS_WITH_EXERCISES, ids=lambda p: p.stem)
def test_every_student_notebook_runs_up_to_its_first_exercise(source, tmp_path, data_root):
    _run_up_to_first_exercise(source, tmp_path, data_root)

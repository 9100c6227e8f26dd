"""Every chapter meets the reading targets of ``tools/chapter_stats.py``: short enough to read,
its code mostly visible, no code cell longer than a screen, no line of code wider than the
text column."""

import importlib.util

import pytest

from shortbias_lib.runs import REPO_ROOT

_spec = importlib.util.spec_from_file_location("chapter_stats", REPO_ROOT / "tools" / "chapter_stats.py")
chapter_stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chapter_stats)

CHAPTERS = sorted((REPO_ROOT / "book").glob("*.py"))


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_meets_the_reading_targets(source):
    assert chapter_stats.chapter_stats(source).problems() == []


def test_the_measure_counts_hidden_code_but_not_solutions(tmp_path):
    source = tmp_path / "toy.py"
    source.write_text('# %% tags=["remove-cell"]\na = 1\nb = 2\n\n'
                      '# %%\nc = 3\n\n'
                      '# %% tags=["solution", "hide-cell"]\nd = 4\n\n'
                      '# %% tags=["hide-input"]\ne = 5\n')
    stats = chapter_stats.chapter_stats(source)
    assert (stats.code_lines, stats.hidden_lines, stats.longest_cell) == (5, 3, 2)
    assert stats.problems() == ["60% of code hidden (at most 30%)"]


def test_the_width_counts_code_a_reader_sees_not_removed_code_nor_prose(tmp_path):
    wide, fits = "x = " + "1" * 85, "y = " + "2" * 84  # 89 and 88 characters
    source = tmp_path / "toy.py"
    source.write_text(f'# %%\n{fits}\n\n# %% [markdown]\n# {"w" * 200}\n\n'
                      f'# %% tags=["remove-cell"]\n{wide}\n\n# %% tags=["remove-input"]\n{wide}\n')
    stats = chapter_stats.chapter_stats(source)
    assert (stats.widest_line, stats.problems()) == (88, ["67% of code hidden (at most 30%)"])
    for tags in ("", ' tags=["hide-input"]', ' tags=["hide-cell"]', ' tags=["solution", "hide-cell"]'):
        source.write_text(f'# %%\n{fits}\n\n# %%{tags}\n{wide}\n')
        stats = chapter_stats.chapter_stats(source)
        assert stats.widest_line == 89, tags
        assert stats.problems()[-1] == "a code line of 89 characters (at most 88)", tags

"""The reproducibility report: values and claims read from result files, and the provenance table."""

import numpy as np
import pytest

from shortbias_lib import runs


def test_reproducibility_report_reads_values_and_claims_from_result_files(tmp_path):
    from shortbias_lib import report

    def save(name, profile, **arrays):
        runs.save_result(tmp_path / name, arrays, {"profile": profile, "config": {"chapter": name}})

    save("a.npz", "quick", reported_names=np.array(["loss"]), reported_ours=np.array([5.0]),
         reported_paper=np.array([4.0]))
    save("b.npz", "quick", reported_names=np.array(["ratio", "ratio2"]),
         reported_ours=np.array([50.0, 500.0]), reported_paper=np.array([100.0, 100.0]),
         reported_kinds=np.array(["lower_bound", "lower_bound"]))
    save("c.npz", "paper", reported_names=np.array(["other"]), reported_ours=np.array([1.0]),
         reported_paper=np.array([1.0]))
    found = report.collect(tmp_path, "quick")
    assert [(c.chapter, c.quantity) for c in found] == [("a.npz", "loss"), ("b.npz", "ratio"),
                                                         ("b.npz", "ratio2")]
    assert [c.agreement for c in found] == ["+25.00%", "claim not met", "claim holds"]
    assert found[1].paper_text == "> 100"
    with pytest.raises(ValueError, match="kind"):
        report.Comparison("x", "y", 1.0, 1.0, "z", kind="approximately")


def test_markdown_table_writes_a_header_a_rule_and_one_line_per_row():
    from shortbias_lib import report

    assert report.markdown_table(["T", "loss"], [(10, "0.5"), ("20", f"{0.25:.3g}")]) == (
        "| T | loss |\n|---|---|\n| 10 | 0.5 |\n| 20 | 0.25 |")
    assert report.markdown_table(["a", "b", "c"], []) == "| a | b | c |\n|---|---|---|"


def test_markdown_renders_its_text_and_is_the_library_s_one_markdown_wrapper():
    """``{glue:md}`` and a notebook render what ``_repr_markdown_`` returns; every other module
    wraps its sentences through :func:`shortbias_lib.report.markdown`, not its own copy."""
    import ast
    from pathlib import Path

    from shortbias_lib.report import markdown

    assert markdown("the *bias* at $T=10$")._repr_markdown_() == "the *bias* at $T=10$"
    package = Path(__file__).resolve().parent.parent / "shortbias_lib"
    wrappers = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                      if any(isinstance(node, ast.Name) and node.id == "Markdown"
                             for node in ast.walk(ast.parse(path.read_text()))))
    assert wrappers == ["report.py"]


def test_provenance_table_lists_only_the_profile_s_result_files(tmp_path):
    from shortbias_lib import report

    runs.save_result(tmp_path / "mine.npz", {"x": np.zeros(1)},
                     runs.provenance("quick", "cpu", 3))
    runs.save_result(tmp_path / "other.npz", {"x": np.zeros(1)},
                     runs.provenance("paper", "cpu", 3))
    text = report.provenance_table(tmp_path, "quick").data
    assert "mine.npz" in text and "other.npz" not in text and "| cpu | 3 |" in text
    assert "No result file" in report.provenance_table(tmp_path, "smoke").data


def test_reproducibility_report_skips_partial_files_and_reports_damaged_ones(tmp_path):
    from shortbias_lib import report

    arrays = dict(reported_names=np.array(["loss"]), reported_ours=np.array([5.0]),
                  reported_paper=np.array([4.0]))
    for name in ("a.npz", "a.partial.npz"):
        runs.save_result(tmp_path / name, arrays, runs.provenance("quick", "cpu", 0, chapter="a"))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 and then nothing")
    assert [c.source for c in report.collect(tmp_path, "quick")] == ["a.npz"]
    text = report.provenance_table(tmp_path, "quick").data
    assert "`a.npz`" in text and "a.partial.npz" not in text
    assert "`broken.npz`: result file" in text and "--no-resume" in text


def _comparison(kind, ours, paper=10.0, low=float("nan"), high=float("nan"), quantity="q", source="s.npz"):
    from shortbias_lib.report import Comparison

    return Comparison("ch", quantity, ours, paper, source, kind=kind, low=low, high=high)


def test_comparison_facts_count_agreement_and_leave_calibrated_numbers_out():
    """Values within 10% agree (10.5 does, 12 does not); a bound holds only above it; a
    calibrated number counts in neither total and is named instead."""
    from shortbias_lib import report

    facts = report.comparison_facts([
        _comparison("value", 10.5), _comparison("value", 12.0), _comparison("lower_bound", 20.0),
        _comparison("lower_bound", 5.0), _comparison("calibrated", 10.0, quantity="greedy loss")])
    assert (facts["repro_values_close"], facts["repro_values"]) == (1, 2)
    assert (facts["repro_claims_held"], facts["repro_claims"], facts["repro_calibrated"]) == (1, 2, 1)
    assert facts["repro_calibrated_list"].data == "greedy loss (ch)"
    assert report.comparison_facts([])["repro_calibrated_list"].data == "none in this run"


def test_archive_claim_facts_hold_a_claim_only_with_its_whole_interval_above_the_bound():
    from shortbias_lib import report

    facts = report.archive_claim_facts([
        _comparison("lower_bound", 30.0, low=15.0, high=40.0, source="a.npz"),
        _comparison("lower_bound", 30.0, low=5.0, high=40.0, source="b.npz"),
        _comparison("value", 10.0)])
    assert (facts["repro_archive_held"], facts["repro_archive_claims"]) == (1, 2)
    assert facts["repro_archive_verdicts"] == ("a.npz, q: claim holds; "
                                               "b.npz, q: undecided (interval spans the bound)")


def test_kappa_facts_give_the_largest_shift_from_the_paper_over_finite_predictions():
    from shortbias_lib import report

    figure3 = {"kappas": np.array([10.0, 100.0, 1000.0]), "kappa_c0": np.array([0.1, 0.2, 0.3]),
               "kappa_fixed": np.array([0.9, 1.05, np.nan])}
    facts = report.kappa_facts(figure3, 100.0, 1.0)
    assert facts["repro_kappa"] == 100.0
    assert "between 0.90 and 1.05" in facts["repro_kappa_effect"].data
    assert "at most 10.0% of the paper's value" in facts["repro_kappa_effect"].data
    assert "not measured" in report.kappa_facts(None, 100.0, 1.0)["repro_kappa_effect"].data
    table = report.kappa_table(figure3, 1.0).data
    assert "| 1000 | 0.300 | nan | 1.00 |" in table and table.count("\n") == 4
    assert "No Figure 3 result" in report.kappa_table(None, 1.0).data

"""Profiles, result files, the data layer and the command line."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from shortbias_lib import data, runs
from shortbias_lib.errors import DataNotFoundError
from shortbias_lib.profiles import PROFILES, check_profile, pick

from shortbias_lib.runs import REPO_ROOT


def test_profiles_accept_known_and_reject_unknown_names():
    assert [check_profile(p) for p in PROFILES] == list(PROFILES)
    with pytest.raises(ValueError, match="profile must be one of smoke, quick, paper; got 'fast'"):
        check_profile("fast")
    assert pick("paper", {"smoke": 1, "quick": 2, "paper": 3}) == 3
    with pytest.raises(KeyError, match="paper"):
        pick("smoke", {"smoke": 1, "quick": 2})


def test_save_result_round_trips_arrays_and_provenance(tmp_path):
    meta = runs.provenance("smoke", "cpu", 3, horizon=[1, 2])
    arrays = {"loss": np.arange(5.0), "steps": np.array([1, 2])}
    path = runs.save_result(tmp_path / "r.npz", arrays, meta)
    loaded, loaded_meta = runs.load_result(path)
    np.testing.assert_array_equal(loaded["loss"], arrays["loss"])
    assert loaded_meta["profile"] == "smoke" and loaded_meta["seed"] == 3
    assert loaded_meta["git_commit"] and loaded_meta["time_utc"]
    assert runs.load_matching(path, {"horizon": (1, 2)}) is not None
    assert runs.load_matching(path, {"horizon": (1, 3)}) is None
    assert runs.load_matching(tmp_path / "absent.npz", {}) is None


def test_save_result_never_leaves_a_half_written_file(tmp_path):
    path = tmp_path / "r.npz"
    runs.save_result(path, {"x": np.zeros(3)}, {"version": 1})

    class Unserialisable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        runs.save_result(path, {"x": np.ones(3), "y": Unserialisable()}, {"version": 2})
    arrays, meta = runs.load_result(path)  # the old file is intact
    assert meta == {"version": 1} and arrays["x"].sum() == 0
    assert [p.name for p in tmp_path.iterdir()] == ["r.npz"]


def test_resolve_device_validates_its_argument():
    assert runs.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda"):
        runs.resolve_device("tpu")


def test_mnist_loads_the_genuine_files_with_the_published_label_counts(data_root):
    train = data.load("mnist", train=True, root=data_root)
    assert train.images.shape == (60000, 1, 28, 28) and train.source == "canonical MNIST files"
    assert 0.0 <= float(train.images.min()) and float(train.images.max()) == 1.0
    counts = torch.bincount(train.labels, minlength=10).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert len(data.load("mnist", train=False, root=data_root)) == 10000


def test_cifar10_jpeg_copy_is_reported_and_class_balanced(data_root):
    test = data.load("cifar10", train=False, root=data_root, limit=200)
    assert test.images.shape == (200, 3, 32, 32)
    assert "JPEG copy" in test.source
    assert torch.bincount(test.labels, minlength=10).tolist() == [20] * 10


def test_missing_data_gives_one_actionable_message(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_try_download", lambda factory: None)  # as if offline
    with pytest.raises(DataNotFoundError, match="MNIST not found under .*looked for"):
        data.load("mnist", root=tmp_path)
    with pytest.raises(DataNotFoundError, match="data root .*does-not-exist does not exist"):
        data.load("mnist", root=tmp_path / "does-not-exist")
    with pytest.raises(ValueError, match="data set must be one of mnist, cifar10"):
        data.load("svhn", root=tmp_path)


def _cli(*args, env=None):
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "shortbias_lib", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, env=environment, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["data", "--profile", "fast"], "profile must be one of smoke, quick, paper; got 'fast'"),
    (["data", "--data-root", "/no/such/folder"], "data root /no/such/folder does not exist"),
    (["no-such-experiment"], "experiment must be one of"),
])
def test_cli_errors_are_one_line_and_exit_2(args, message):
    result = _cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_cli_reports_the_data_sources(data_root):
    result = _cli("data", "--data-root", str(data_root))
    assert result.returncode == 0, result.stderr
    assert "canonical MNIST files" in result.stdout and "JPEG copy" in result.stdout


def test_every_cli_experiment_exists_with_the_common_signature():
    import importlib
    import inspect

    from shortbias_lib.__main__ import EXPERIMENTS

    for name, (module, function, _) in EXPERIMENTS.items():
        run = getattr(importlib.import_module(module), function)
        parameters = inspect.signature(run).parameters
        for keyword in ("device", "seed", "data_root", "results", "resume"):
            assert keyword in parameters, f"{name}: {function} lacks {keyword}"


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

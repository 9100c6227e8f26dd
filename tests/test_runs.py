"""Result files (saved atomically, with provenance) and device selection."""

import numpy as np
import pytest
import torch

from shortbias_lib import runs


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


# ---------------------------------------------------------------- the experiment contract

def test_run_or_resume_computes_once_and_reuses_only_a_matching_file(tmp_path):
    path, calls = tmp_path / "r.npz", []

    def compute(value=1.0):
        calls.append(value)
        runs.save_result(path, {"x": np.full(3, value)}, runs.provenance("smoke", "cpu", 0, size=3))

    first = runs.run_or_resume(path, {"size": 3}, compute, expected={"x": (3,)})
    assert isinstance(first, runs.Result) and calls == [1.0]
    arrays, meta = first                                        # unpacks like (arrays, meta)
    np.testing.assert_array_equal(arrays["x"], np.ones(3))
    assert meta["config"] == {"size": 3} and not (tmp_path / "r.npz.lock").exists()
    again = runs.run_or_resume(path, {"size": 3}, lambda: compute(2.0))     # same configuration: reused
    assert calls == [1.0] and np.array_equal(again.arrays["x"], np.ones(3))
    runs.run_or_resume(path, {"size": 3}, lambda: compute(3.0), reuse=lambda meta: False)   # refused
    runs.run_or_resume(path, {"size": 3}, lambda: compute(4.0), resume=False)              # not asked
    assert calls == [1.0, 3.0, 4.0]
    # another configuration is not reused (the file compute writes is what comes back)
    assert runs.run_or_resume(path, {"size": 4}, lambda: compute(5.0)).arrays["x"][0] == 5.0


def test_run_or_resume_returns_the_partial_result_of_a_run_stopped_early(tmp_path):
    partial = runs.Result({"x": np.zeros(2)}, {"stage": "first leg"})
    assert runs.run_or_resume(tmp_path / "r.npz", {}, lambda: partial) is partial
    assert not (tmp_path / "r.npz").exists()


def test_json_ready_is_what_a_result_file_records():
    from pathlib import PurePosixPath

    config = {"sizes": (1, 2), "path": PurePosixPath("/x"), "nested": {"b": 1, "a": (3,)}}
    assert runs.json_ready(config) == {"sizes": [1, 2], "path": "/x", "nested": {"a": [3], "b": 1}}

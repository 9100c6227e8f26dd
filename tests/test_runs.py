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


def test_run_shared_passes_over_a_file_another_run_computes_and_reads_it_when_done(tmp_path):
    """Two copies of one command split their runs: while another holder has file a's lock,
    run_shared computes b, then waits for a and reads it (never computing a itself)."""
    import threading

    from shortbias_lib.locks import run_lock

    config = {"k": 1}
    paths = {key: tmp_path / f"{key}.npz" for key in "ab"}
    computed, holding, release = [], threading.Event(), threading.Event()

    def other_process():
        with run_lock(paths["a"]):
            holding.set()
            release.wait(10)
            runs.save_result(paths["a"], {"x": np.array([7.0])}, {"config": config})

    def job(key):
        def compute():
            computed.append(key)
            release.set()   # a is finished by the other holder while b computes
            runs.save_result(paths[key], {"x": np.array([1.0])}, {"config": config})
        return paths[key], config, compute

    other = threading.Thread(target=other_process)
    other.start()
    holding.wait(10)
    found = runs.run_shared({"a": job("a"), "b": job("b")}, poll_seconds=0.05, show_progress=False)
    other.join()
    assert computed == ["b"]
    assert list(found) == ["a", "b"]
    assert found["a"].arrays["x"][0] == 7.0 and found["b"].arrays["x"][0] == 1.0


def test_to_numpy_detaches_tensors_keeps_their_dtype_and_casts_only_when_asked():
    """The plots draw what they are given (dtype kept); the noisy quadratic's NumPy side asks for
    float64, which lists of integers and float32 tensors alike then become."""
    leaf = torch.tensor([1.5, 2.5], dtype=torch.float32, requires_grad=True)
    shown = runs.to_numpy(leaf * 2)
    assert shown.dtype == np.float32 and shown.tolist() == [3.0, 5.0]
    assert runs.to_numpy([1, 2]).dtype.kind == "i"
    for given in ([1, 2], np.array([1, 2], dtype=np.int32), torch.tensor([1.0, 2.0], dtype=torch.float32)):
        exact = runs.to_numpy(given, np.float64)
        assert exact.dtype == np.float64 and exact.tolist() == [1.0, 2.0]
    float64 = torch.arange(3, dtype=torch.float64)
    assert runs.to_numpy(float64, np.float64).tolist() == float64.tolist()

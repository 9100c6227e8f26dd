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

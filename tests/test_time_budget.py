"""Time-bounded legs (``--max-minutes``, :func:`shortbias_lib.runs.time_budget`): a run stopped
for time leaves a checkpoint from which the same command resumes to the uninterrupted result."""

import math

import numpy as np
import pytest

from shortbias_lib.experiments.online import experiment as online
from shortbias_lib import runs
from shortbias_lib.__main__ import EXIT_OUT_OF_TIME, main
from shortbias_lib.errors import TimeBudgetSpent
from test_offline import _run as offline_run
from test_offline import _tiny_config

TINY = 1e-9  # minutes: spent by the first checkpoint, so every leg advances by one checkpoint


def test_a_spent_budget_stops_at_a_checkpoint_and_only_after_progress():
    runs.after_checkpoint("no budget")  # no budget in force: never stops
    with runs.time_budget(TINY):
        runs.before_computation("first computation")  # nothing written yet: it may start
        with pytest.raises(TimeBudgetSpent, match="stopped for time.*step 10.*run the same command"):
            runs.after_checkpoint("run x, step 10")
        with pytest.raises(TimeBudgetSpent):
            runs.before_computation("second computation")  # progress made: none starts
        with runs.time_budget(60):  # a nested budget has its own deadline and progress
            runs.before_computation("inner")
            runs.after_checkpoint("inner")
        with pytest.raises(TimeBudgetSpent):
            runs.before_computation("the outer budget again")
    runs.after_checkpoint("the budget ended")
    for bad in (0, -1.0, math.nan, math.inf, "5"):
        with pytest.raises(ValueError, match="max minutes"), runs.time_budget(bad):
            pass


def _gathered(folder):
    arrays, _ = runs.load_result(folder / "online_smoke_seed0.npz")
    return arrays


def test_cli_online_legs_stopped_for_time_resume_to_the_uninterrupted_result(tmp_path, data_root, monkeypatch,
                                                                               capsys):
    mnist = dict(online.SIZES["smoke"]["mnist"], checkpoint_every=10)  # 40 steps: checkpoints at 10, 20
    monkeypatch.setitem(online.SIZES["smoke"], "mnist", mnist)
    common = ["online", "--profile", "smoke", "--device", "cpu", "--data-root", str(data_root)]
    assert main(common + ["--results", str(tmp_path / "whole")]) == 0
    codes, lines = [], []
    while not codes or codes[-1] == EXIT_OUT_OF_TIME:
        assert len(codes) < 20, "legs make no progress"
        codes.append(main(common + ["--results", str(tmp_path / "legs"), "--max-minutes", str(TINY)]))
        lines.append([line for line in capsys.readouterr().err.splitlines() if "stopped for time" in line])
    # One checkpoint or one finished run per leg: MNIST's two runs take 3 legs each (checkpoints at
    # steps 10 and 20, where training stretches end; then the finish), CIFAR-10's three runs (no
    # checkpoints in smoke) one each, and the gathering one.
    assert codes == [EXIT_OUT_OF_TIME] * 9 + [0]
    assert [len(found) for found in lines] == [1] * 9 + [0]
    assert all("run the same command again" in found[0] for found in lines[:-1])
    assert "mnist__baseline__0.1, step 10" in lines[0][0] and "cifar10__baseline" in lines[5][0]
    whole, legs = _gathered(tmp_path / "whole"), _gathered(tmp_path / "legs")
    assert sorted(whole) == sorted(legs)
    for name, value in whole.items():
        if not name.endswith("__seconds"):  # wall-clock time, the only difference
            assert np.array_equal(value, legs[name], equal_nan=value.dtype.kind == "f"), name
    assert not list((tmp_path / "legs").rglob("*.partial.npz"))
    # Each MNIST run's file lists the two legs it resumed (the steps they reached, their commit).
    for key in ("mnist__baseline__0.1", "mnist__stochastic__0.01"):
        _, meta = runs.load_result(online.checkpoint_path("smoke", 0, key, tmp_path / "legs" / "checkpoints"))
        assert [leg["stage"] for leg in meta["earlier_legs"]] == ["step 10", "step 20"]
        assert all(leg["git_commit"] == meta["git_commit"] and leg["device"] == "cpu" for leg in meta["earlier_legs"])
        _, whole_meta = runs.load_result(online.checkpoint_path("smoke", 0, key, tmp_path / "whole" / "checkpoints"))
        assert "earlier_legs" not in whole_meta


def test_offline_legs_stopped_for_time_resume_to_the_uninterrupted_result(tmp_path):
    config = _tiny_config()
    reference, _ = offline_run(tmp_path / "reference.npz", config)
    path = tmp_path / "legs.npz"
    stages = []
    for _ in range(40):
        try:
            with runs.time_budget(TINY):
                arrays, meta = offline_run(path, config, stages.append)
            break
        except TimeBudgetSpent:
            assert path.with_suffix(".partial.npz").exists() and not path.exists()
    else:
        pytest.fail("legs make no progress")
    assert len(stages) == len(set(stages)) > 10  # one new checkpoint per leg, none redone
    # every leg resumed the one before (the last one only added the summary)
    assert meta["stage"] == "finished" and len(meta["earlier_legs"]) == len(stages)
    for name, value in reference.items():
        assert np.array_equal(arrays[name], value, equal_nan=value.dtype.kind == "f"), name

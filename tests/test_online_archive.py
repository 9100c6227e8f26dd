"""The committed online archives (MNIST at the paper's scale) are current with the code.

Before adaptation stops a run does not depend on its length, so a 60-step run of an
archive's configuration (adaptation for 30 steps, at steps 0, 10 and 20) must reproduce the
archive's first 30 steps: rates, momenta and minibatch losses. Only early steps are
compared: high-rate runs are chaotic, and after thousands of steps a change in the order of
floating-point operations (another thread count, another machine) moves them.
"""

import numpy as np
import pytest
import torch

from shortbias_lib.experiments.online import experiment as online
from shortbias_lib import runs

SLICE = 30   # steps compared: three adaptations


def _recompute_start(lr, mode="stochastic", **overrides):
    """The first :data:`SLICE` steps of one run of the ``archive`` profile, recomputed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # as the archives were run
    sizes = dict(steps=2 * SLICE, checkpoint_every=None, n_eval_train=100, n_test=100,
                 init_lrs=(lr,) if mode == "stochastic" else (),
                 det_lrs=(lr,) if mode == "deterministic" else (), **overrides)
    try:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            return online.run_dataset("mnist", "archive", device="cpu", results=folder,
                                      show_progress=False, overrides=sizes)[online.run_key("mnist", mode, lr)]
    finally:
        torch.set_num_threads(threads)


def _assert_same_start(fresh, old):
    assert np.unique(np.round(np.log(old.eff_lr[:SLICE]), 9)).size >= 3  # three adaptations moved it
    np.testing.assert_allclose(fresh.eff_lr[:SLICE], old.eff_lr[:SLICE], rtol=1e-4)
    np.testing.assert_allclose(fresh.momentum[:SLICE], old.momentum[:SLICE], rtol=1e-4)
    np.testing.assert_allclose(fresh.losses[:SLICE], old.losses[:SLICE], rtol=1e-4)


def test_the_full_scale_archive_is_current_with_the_code():
    """The smallest initial rate archived of each lookahead (the least chaotic run), and the
    archive holds the baseline and at least one SMD run, each with the archive's sizes."""
    archived, metas, missing = online.archived_runs(seed=0)
    smd_keys = [key for key in archived if archived[key].mode != "baseline"]
    assert online.run_key("mnist", "baseline", 0.1) in archived and smd_keys, (
        f"the online archive has no SMD run yet: regenerate it with `{online.ARCHIVE_COMMAND}`")
    for key, meta in metas.items():
        assert meta["profile"] == "archive"
        cfg = meta["config"]
        assert (cfg["meta_steps"], cfg["meta_lr"], cfg["meta_batches"], cfg["steps"]) == (100, 1e-2, "fresh", 50000)
    for mode in ("stochastic", "deterministic"):
        done = sorted(run.init_lr for run in archived.values() if run.mode == mode)
        if done:
            lr = done[0]
            _assert_same_start(_recompute_start(lr, mode), archived[online.run_key("mnist", mode, lr)])


def test_the_earlier_archive_is_current_with_the_code():
    """The earlier archive (20 meta steps, minibatches shared by an adaptation), its largest rate."""
    path = online.earlier_archive_path(seed=0)
    arrays, meta = runs.load_result(path)
    archived = online.runs_from_arrays(arrays)
    assert meta["profile"] == "archive" and meta["config"]["datasets"] == ["mnist"]
    cfg = meta["config"]["mnist"]
    assert (cfg["meta_steps"], cfg["meta_lr"]) == (20, 5e-2) and "meta_batches" not in cfg  # shared
    lr = max(cfg["init_lrs"])
    fresh = _recompute_start(lr, **online.EARLIER_ARCHIVE_OVERRIDES)
    _assert_same_start(fresh, archived[online.run_key("mnist", "stochastic", lr)])


def test_recomputing_with_the_other_minibatch_draw_does_not_match():
    """The comparison is sharp: fresh minibatches at every meta step (Algorithm 1) do not
    reproduce the earlier archive, made with minibatches shared by an adaptation."""
    arrays, meta = runs.load_result(online.earlier_archive_path(seed=0))
    lr = max(meta["config"]["mnist"]["init_lrs"])
    old = online.runs_from_arrays(arrays)[online.run_key("mnist", "stochastic", lr)]
    fresh = _recompute_start(lr, **dict(online.EARLIER_ARCHIVE_OVERRIDES, meta_batches="fresh"))
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(fresh.eff_lr[:SLICE], old.eff_lr[:SLICE], rtol=1e-4)

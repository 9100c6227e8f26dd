"""The committed online archive (MNIST at the paper's scale) is current with the code."""

import numpy as np
import pytest
import torch

from shortbias_lib import online, runs


def test_the_archived_online_run_is_current_with_the_code(tmp_path):
    """Recompute the first three adaptations of the largest initial rate and compare.

    Before adaptation stops, the run does not depend on its length, so a 60-step run of
    the archive's configuration (adaptation for 30 steps, at steps 0, 10 and 20) must
    reproduce the archive's first 30 steps: rates, momenta and minibatch losses.
    """
    path = online.archive_path(seed=0)
    if not path.exists():
        pytest.fail(f"{path} is missing: regenerate it with `{online.ARCHIVE_COMMAND}`")
    arrays, meta = runs.load_result(path)
    archived = online.runs_from_arrays(arrays)
    assert meta["profile"] == "archive" and meta["config"]["datasets"] == ["mnist"]
    lr = max(online.SIZES["archive"]["mnist"]["init_lrs"])
    old = archived[online.run_key("mnist", "stochastic", lr)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # as the archive was run
    try:
        fresh = online.run_dataset(
            "mnist", "archive", device="cpu", results=tmp_path, show_progress=False,
            overrides=dict(steps=60, init_lrs=(lr,), checkpoint_every=None, n_eval_train=100,
                           n_test=100))[online.run_key("mnist", "stochastic", lr)]
    finally:
        torch.set_num_threads(threads)
    n = 30
    assert np.unique(np.round(np.log(old.eff_lr[:n]), 9)).size >= 3  # three adaptations moved it
    np.testing.assert_allclose(fresh.eff_lr[:n], old.eff_lr[:n], rtol=1e-4)
    np.testing.assert_allclose(fresh.momentum[:n], old.momentum[:n], rtol=1e-4)
    np.testing.assert_allclose(fresh.losses[:n], old.losses[:n], rtol=1e-4)

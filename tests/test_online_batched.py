"""S online SMD runs advanced together (online_batched_runs) against separate online_loop.online_run runs."""

import numpy as np
import pytest
import torch

from shortbias_lib.engine import batches, models
from shortbias_lib.experiments.online.batched import online_batched_runs
from shortbias_lib.experiments.online.loop import OnlineSettings, online_run

SIZES = (20, 8, 6, 5)
LRS = (0.01, 0.08, 0.5)


def _case(bad_example):
    g = torch.Generator().manual_seed(3)
    params = models.mlp_init(g, sizes=SIZES, init_std=0.5, dtype=torch.float64)
    images = torch.randn(80, SIZES[0], generator=g, dtype=torch.float64)
    if bad_example:
        images[11] *= bad_example
    labels = torch.randint(0, SIZES[-1], (80,), generator=g)
    return params, images, labels


def _samplers(images, labels, k):
    return batches.BatchSampler(images, labels, 8, seed=10 + k), batches.BatchSampler(images, labels, 8, seed=20 + k)


# bad: one example scaled so that its loss passes training.LOSS_LIMIT: lookaheads that draw it
# stop their adaptation, and two of the three runs diverge in training.
# dead: a network whose first-layer weights moved this far from the start counts as dead
# (evaluated at chance level, log 10; a live one at half its loss, below chance from the
# start), so that runs are stopped by chance_patience.
@pytest.mark.parametrize("mode,bad,dead", [("stochastic", 0, None), ("stochastic", 1e35, None),
                                           ("deterministic", 1e35, None), ("baseline", 1e35, None),
                                           ("stochastic", 0, 1.0)])
def test_batched_online_runs_equal_separate_runs(mode, bad, dead):
    """Float64: every record of each run (rates, momenta, minibatch losses, evaluations, meta-losses,
    stopped lookaheads, divergence, stop at chance level, settled rate) equal to 1e-9 relative."""
    params, images, labels = _case(bad)
    settings = OnlineSettings(mode=mode, steps=36, adapt_until=20, adapt_every=5, meta_steps=3, horizon=2,
                              meta_lr=0.05, eval_every=5, chance_patience=2)

    def eval_fn(p):  # without the bad example
        if dead is not None and float((p[0] - params[0]).norm()) > dead:
            return np.log(10.0)
        loss = models.mean_loss(models.mlp_apply, p, images[20:], labels[20:])
        return loss if dead is None else loss / 2

    separate = [online_run(models.mlp_apply, params, *_samplers(images, labels, k), lr, 0.9, settings=settings,
                           eval_fn=eval_fn, test_fn=eval_fn, show_progress=False) for k, lr in enumerate(LRS)]
    pairs = [_samplers(images, labels, k) for k in range(len(LRS))]
    together = online_batched_runs(params, [p[0] for p in pairs], [p[1] for p in pairs], LRS, 0.9,
                                   settings=settings, eval_fn=eval_fn, test_fn=eval_fn)
    for a, b in zip(separate, together):
        assert a.label == b.label and a.diverged == b.diverged and a.diverged_step == b.diverged_step
        assert a.stopped_step == b.stopped_step
        for name in ("eval_steps", "adapt_steps", "lookahead_diverged_steps"):
            np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
        for name in ("eff_lr", "momentum", "losses", "eval_losses", "meta_loss_first", "meta_loss_last"):
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-9, atol=1e-12, err_msg=name)
        for name in ("settled_lr", "settled_momentum", "final_train_loss", "test_error"):
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-9, err_msg=name)
    if dead is not None:
        assert [r.stopped_step >= 0 for r in separate] == [False, True, True]
    if bad:
        assert sum(r.diverged for r in separate) == 2
        assert mode == "baseline" or sum(r.lookahead_diverged_steps.size for r in separate) >= 2

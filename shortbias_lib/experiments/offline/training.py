"""The offline experiment's training pieces: batched runs of many schedules recording every
horizon's objective (the sweep) or curves every few steps (Figure 6). Its warm start is
:mod:`shortbias_lib.engine.warm_start`'s."""

import numpy as np
import torch

from ...engine.models import batched_loss, mlp_apply
from ...engine.schedules import InverseTime
from ...engine.training import train_batched


def horizon_objectives(state, alpha0, beta, K, horizons, batches, objective, momentum=0.9,
                       convention="paper", eval_chunk=1000, apply=mlp_apply):
    """Meta-objectives of every horizon from ONE run per schedule.

    Trains S schedules ``alpha_0 / (1 + t/K)^beta`` (tensors of shape (S,))
    for ``max(horizons)`` steps from ``state`` and records the mean loss on
    ``objective = (images, labels)`` after each horizon. Returns
    ``(values (S, H), diverged_step (S,))``; a diverged run has NaN from
    its divergence on and its step (else -1).
    """
    images, labels = objective

    def eval_fn(params):
        return batched_loss(apply, params, images, labels, chunk=eval_chunk)

    schedule = InverseTime(alpha0, beta, K)
    result = train_batched(apply, state, schedule, int(max(horizons)), batches, momentum=momentum,
                           convention=convention, record_steps=list(horizons), eval_fn=eval_fn)
    return result.losses, result.diverged_step


def train_curves(state, schedule, steps, every, batches, train_eval, test_eval, momentum=0.9,
                 convention="paper", eval_chunk=2000, apply=mlp_apply):
    """Figure 6: train the S runs of ``schedule`` (an :class:`~shortbias_lib.engine.schedules.InverseTime`
    with tensors of shape (S,)) for ``steps`` and record, every ``every`` steps,
    training loss and error (on ``train_eval``) and test error (on ``test_eval``).

    Returns a dict of arrays: ``steps`` (R,), ``train_loss``, ``train_error``,
    ``test_error`` (S, R) (NaN once a run diverged) and ``lr`` (S, R).
    """
    record = sorted(set(list(range(0, steps + 1, every)) + [steps]))
    rows = []

    def metrics(params, images, labels):
        loss, error = batched_loss(apply, params, images, labels, eval_chunk, errors=True, dtype=torch.float64)
        return loss.cpu().numpy(), error.cpu().numpy()

    def eval_fn(params):
        loss, error = metrics(params, *train_eval)
        _, test_error = metrics(params, *test_eval)
        rows.append((loss, error, test_error))
        return torch.as_tensor(loss, device=params[0].device)

    result = train_batched(apply, state, schedule, steps, batches, momentum=momentum, convention=convention,
                           record_steps=record, eval_fn=eval_fn)
    loss, error, test_error = (np.stack(col, axis=1) for col in zip(*rows))
    bad = np.isnan(result.losses)
    for array in (loss, error, test_error):
        array[bad] = np.nan
    lr = InverseTime(np.asarray(schedule.alpha0, dtype=np.float64)[:, None],
                     np.asarray(schedule.beta, dtype=np.float64)[:, None],
                     schedule.K).lr(np.asarray(record, dtype=np.float64)[None, :])
    return {"steps": np.asarray(record), "train_loss": loss, "train_error": error,
            "test_error": test_error, "lr": lr}

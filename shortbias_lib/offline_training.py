"""The offline experiment's training pieces: the minibatch stream with random access, the
seeded warm start, and batched runs of many schedules recording every horizon's objective
(the sweep) or curves every few steps (Figure 6)."""

import numpy as np
import torch

from .models import mlp_apply, mlp_init
from .offline_design import derived_seed
from .training import InverseTime, batched_loss, init_state, train, train_batched


class StepBatches:
    """Minibatch ``t`` of a fixed sequence (epochs of seeded permutations), with random access.

    Batch ``t`` depends only on ``(seed, t)``, so a run of T steps sees the
    first T batches of a longer run, every chunk of samples sees the same
    batches, and a resumed run sees what an uninterrupted one would.
    """

    def __init__(self, images, labels, batch_size, seed):
        if not 1 <= batch_size <= len(labels):
            raise ValueError(f"batch_size must lie in [1, {len(labels)}]; got {batch_size}")
        self.images, self.labels = images, labels
        self.batch_size, self.seed = batch_size, seed
        self.per_epoch = len(labels) // batch_size
        self._epoch, self._perm = None, None

    def indices(self, t):
        epoch, k = divmod(int(t), self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch))
            self._perm = torch.randperm(len(self.labels), generator=generator).to(self.labels.device)
            self._epoch = epoch
        return self._perm[k * self.batch_size:(k + 1) * self.batch_size]

    def __call__(self, t):
        index = self.indices(t)
        return self.images[index], self.labels[index]

    def take(self, start, n):
        """Batches ``start, ..., start + n - 1`` as a list."""
        return [self(start + i) for i in range(n)]


def warm_start(params, batches, steps=50, lr=0.1, momentum=0.9, convention="paper", apply=mlp_apply):
    """``steps`` of SGD with momentum at a constant rate; returns a state at schedule step 0.

    The velocity is kept (training continues), the step counter restarts so
    the decay schedule starts at ``t = 0``.
    """
    result = train(apply, params, batches, steps, lr, momentum, convention, raise_on_divergence=True)
    return init_state(result.state.params, result.state.velocity, step=0)


def seeded_warm_start(config, seed, images, labels, dtype=torch.float32, device=None):
    """The experiment's warm start from its seed: the MLP drawn with key ``(seed, 0)``, then
    :func:`warm_start` on minibatches of key ``(seed, 1)`` (``config`` gives the sizes)."""
    generator = torch.Generator().manual_seed(derived_seed(seed, 0))
    params = mlp_init(generator, tuple(config["sizes"]), config["init_std"], dtype, device)
    return warm_start(params, StepBatches(images, labels, config["batch_size"], derived_seed(seed, 1)),
                      config["warm_steps"], config["warm_lr"], config["warm_momentum"],
                      config["convention"])


def warm_arrays(state):
    """A warm start as result-file arrays ``warm_params_i``, ``warm_velocity_i``."""
    arrays = {}
    for i, (p, v) in enumerate(zip(state.params, state.velocity)):
        arrays[f"warm_params_{i}"] = p.cpu().numpy()
        arrays[f"warm_velocity_{i}"] = v.cpu().numpy()
    return arrays


def warm_state(arrays, device=None):
    """The warm start stored by :func:`warm_arrays`, as a :class:`~shortbias_lib.training.TrainState`."""
    n = len([k for k in arrays if k.startswith("warm_params_")])
    return init_state(tuple(torch.as_tensor(arrays[f"warm_params_{i}"], device=device) for i in range(n)),
                      tuple(torch.as_tensor(arrays[f"warm_velocity_{i}"], device=device) for i in range(n)))


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
    result = train_batched(apply, state.params, schedule, int(max(horizons)), batches,
                           momentum=momentum, convention=convention,
                           record_steps=list(horizons), velocity=state.velocity, eval_fn=eval_fn)
    return result.losses, result.diverged_step


def batched_metrics(params, images, labels, chunk=2000, apply=mlp_apply):
    """Mean loss and error rate for each of S stacked parameter sets: two arrays of shape (S,)."""
    from torch.func import vmap

    def one(p, x, y):
        logits = apply(p, x)
        loss = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
        return loss, (logits.argmax(-1) != y).sum()

    run = vmap(one, in_dims=(0, None, None))
    loss = wrong = 0.0
    with torch.no_grad():
        for s in range(0, len(labels), chunk):
            a, b = run(tuple(params), images[s:s + chunk], labels[s:s + chunk])
            loss, wrong = loss + a.double(), wrong + b.double()
    return (loss / len(labels)).cpu().numpy(), (wrong / len(labels)).cpu().numpy()


def train_curves(state, alpha0, beta, K, steps, every, batches, train_eval, test_eval,
                 momentum=0.9, convention="paper", eval_chunk=2000, apply=mlp_apply):
    """Figure 6: train S schedules for ``steps`` and record, every ``every`` steps,
    training loss and error (on ``train_eval``) and test error (on ``test_eval``).

    Returns a dict of arrays: ``steps`` (R,), ``train_loss``, ``train_error``,
    ``test_error`` (S, R) (NaN once a run diverged) and ``lr`` (S, R).
    """
    record = sorted(set(list(range(0, steps + 1, every)) + [steps]))
    rows = []

    def eval_fn(params):
        loss, error = batched_metrics(params, *train_eval, chunk=eval_chunk, apply=apply)
        _, test_error = batched_metrics(params, *test_eval, chunk=eval_chunk, apply=apply)
        rows.append((loss, error, test_error))
        return torch.as_tensor(loss, device=params[0].device)

    schedule = InverseTime(alpha0, beta, K)
    result = train_batched(apply, state.params, schedule, steps, batches, momentum=momentum,
                           convention=convention, record_steps=record, velocity=state.velocity,
                           eval_fn=eval_fn)
    loss, error, test_error = (np.stack(col, axis=1) for col in zip(*rows))
    bad = np.isnan(result.losses)
    for array in (loss, error, test_error):
        array[bad] = np.nan
    lr = InverseTime(np.asarray(alpha0, dtype=np.float64)[:, None], np.asarray(beta, dtype=np.float64)[:, None],
                     K).lr(np.asarray(record, dtype=np.float64)[None, :])
    return {"steps": np.asarray(record), "train_loss": loss, "train_error": error,
            "test_error": test_error, "lr": lr}


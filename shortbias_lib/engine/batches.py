"""Minibatch streams: epochs of seeded permutations, cut into batches (the remainder dropped).

Two streams, because archived runs depend on each one's permutations:
:class:`BatchSampler` draws every epoch's permutation from one generator (a
sequential stream, the online experiment's), :class:`StepBatches` seeds each
epoch on its own (random access by step, the offline experiment's). Their seeds, and every
other seed of the experiments, are derived from tuples of keys (:func:`derived_seed`).
"""

import numpy as np
import torch



def derived_seed(*keys):
    """A 63-bit seed derived from integer keys (seed, purpose, ...)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> 1)


class _Epochs:
    """The data and the batch size, checked; batch ``k`` of an epoch's ``order``."""

    def __init__(self, images, labels, batch_size):
        if not 1 <= batch_size <= len(labels):
            raise ValueError(f"batch_size must lie in [1, {len(labels)}]; got {batch_size}")
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.per_epoch = len(labels) // batch_size

    def _indices(self, order, start):
        return order[start:start + self.batch_size]

    def _batch(self, index):
        index = index.to(self.labels.device)
        return self.images[index], self.labels[index]


class BatchSampler(_Epochs):
    """The online experiment's stream: every epoch's permutation from one seeded generator, read in order.

    ``sampler()`` returns the next ``(images, labels)``; ``sampler.take(n)`` a list of n.
    Data are moved to ``device`` once; :meth:`state_dict` saves where the stream stands.
    """

    def __init__(self, images, labels, batch_size=100, seed=0, device=None, dtype=None):
        super().__init__(images, labels, batch_size)
        self.images = images.to(device=device, dtype=dtype or images.dtype)
        self.labels = labels.to(device=device)
        self.generator = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

    @classmethod
    def from_dataset(cls, dataset, batch_size=100, seed=0, device=None, dtype=None):
        return cls(dataset.images, dataset.labels, batch_size, seed, device, dtype)

    def __call__(self):
        return self._batch(self.next_indices())

    def next_indices(self):
        """The example indices of the next batch (on the CPU), advancing the stream as ``sampler()`` does."""
        if self._pos + self.batch_size > len(self._order):
            self._order = torch.randperm(len(self.labels), generator=self.generator)
            self._pos = 0
        index = self._indices(self._order, self._pos)
        self._pos += self.batch_size
        return index

    def take(self, n):
        return [self() for _ in range(n)]

    def state_dict(self):
        """Where the stream stands, as arrays: generator state, this epoch's order, position."""
        return {"rng": self.generator.get_state().numpy(), "order": self._order.cpu().numpy(),
                "pos": int(self._pos)}

    def load_state_dict(self, state):
        """Continue the stream from :meth:`state_dict`'s output (same data and batch size)."""
        self.generator.set_state(torch.from_numpy(np.array(state["rng"], dtype=np.uint8)))
        self._order = torch.from_numpy(np.array(state["order"], dtype=np.int64))
        self._pos = int(state["pos"])


class StepBatches(_Epochs):
    """The offline experiment's stream: batch ``t`` from epoch ``t // per_epoch``, whose permutation
    is seeded by ``(seed, epoch)`` alone, so any step can be read at any time.

    A run of T steps sees the first T batches of a longer run, every chunk of
    samples sees the same batches, and a resumed run sees what an uninterrupted one would.
    """

    def __init__(self, images, labels, batch_size, seed):
        super().__init__(images, labels, batch_size)
        self.seed = seed
        self._epoch, self._perm = None, None

    def indices(self, t):
        """The example indices of batch ``t`` (on the labels' device)."""
        epoch, k = divmod(int(t), self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch))
            self._perm = torch.randperm(len(self.labels), generator=generator).to(self.labels.device)
            self._epoch = epoch
        return self._indices(self._perm, k * self.batch_size)

    def __call__(self, t):
        return self._batch(self.indices(t))

    def take(self, start, n):
        """Batches ``start, ..., start + n - 1`` as a list."""
        return [self(start + i) for i in range(n)]

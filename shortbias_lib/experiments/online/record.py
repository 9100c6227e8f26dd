"""What an online SMD run records (:class:`OnlineRun`) and, while it trains, where it stands
(:class:`OnlineProgress`, which is also its checkpoint).

:func:`shortbias_lib.experiments.online.loop.online_run` fills an :class:`OnlineProgress` step by step and
returns the finished :class:`OnlineRun`; the experiment (:mod:`shortbias_lib.experiments.online.experiment`) saves
runs with :meth:`OnlineRun.to_arrays`, and the chapter and the figures
(:mod:`shortbias_lib.experiments.online.figures`) read them back with :meth:`OnlineRun.from_arrays`.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from ...engine import schedules, training
from ...engine.hyperparams import Hyperparameters
from ...runs import save_result

# A training loss within this fraction of ``log(n_classes)`` counts as chance level.
CHANCE_TOLERANCE = 0.02


def chance_start(eval_losses, n_classes=10, tolerance=CHANCE_TOLERANCE):
    """Index of the first evaluation of the final stretch of ``eval_losses`` at chance level,
    ``log(n_classes)`` (within ``tolerance``), after a loss below it; ``-1`` if the last
    evaluation is below chance level or the loss never was."""
    losses = np.asarray(eval_losses, dtype=float)
    at_chance = losses >= (1.0 - tolerance) * math.log(n_classes)
    if losses.size < 2 or not at_chance[-1] or at_chance.all():
        return -1
    return int(np.flatnonzero(~at_chance)[-1] + 1)


@dataclass
class OnlineRun:
    """Everything recorded by one online run (arrays per step, per evaluation, per adaptation).

    ``eff_lr[t]`` and ``momentum[t]`` are the values used by training step t,
    ``losses[t]`` its minibatch loss (before the step); all three are NaN from
    a diverged step on. ``eval_losses[k]`` is the training-set loss after
    ``eval_steps[k]`` steps. ``settled_lr`` is the effective rate at the end
    of adaptation (``adapt_until``), ``final_train_loss`` the last evaluation.
    """

    label: str
    mode: str
    init_lr: float
    init_momentum: float
    eff_lr: np.ndarray
    momentum: np.ndarray
    losses: np.ndarray
    eval_steps: np.ndarray
    eval_losses: np.ndarray
    adapt_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    meta_loss_first: np.ndarray = field(default_factory=lambda: np.zeros(0))
    meta_loss_last: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lookahead_diverged_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    diverged: bool = False
    diverged_step: int = -1
    settled_lr: float = float("nan")
    settled_momentum: float = float("nan")
    final_train_loss: float = float("nan")
    test_error: float = float("nan")
    seconds: float = 0.0
    # The legs a resumed run continued (:func:`~shortbias_lib.runs.legs_so_far`), for its
    # provenance; not among its arrays.
    earlier_legs: list = field(default_factory=list)

    SCALARS = ("init_lr", "init_momentum", "diverged", "diverged_step", "settled_lr",
               "settled_momentum", "final_train_loss", "test_error", "seconds")
    ARRAYS = ("eff_lr", "momentum", "losses", "eval_steps", "eval_losses", "adapt_steps",
              "meta_loss_first", "meta_loss_last", "lookahead_diverged_steps")

    @property
    def steps(self):
        return len(self.eff_lr)

    @property
    def init_eff_lr(self):
        """The initial effective learning rate ``alpha / (1 - mu)``."""
        return self.init_lr / (1.0 - self.init_momentum)

    def chance_step(self, n_classes=10, tolerance=CHANCE_TOLERANCE):
        """First evaluation step from which the training loss stays at chance level, ``log(n_classes)``.

        A network that a too-large rate has killed (all ReLUs off) predicts
        uniformly: its loss sits at ``log(n_classes)`` without being NaN. Only
        counts if the loss was below chance before. ``-1`` if that never happens.
        """
        start = chance_start(self.eval_losses, n_classes, tolerance)
        return int(self.eval_steps[start]) if start >= 0 else -1

    @property
    def stopped_step(self):
        """The step where the run was stopped at chance level (:class:`OnlineProgress`'s
        ``chance_patience``), ``-1`` if it was not: its last evaluation came before the end."""
        ended_early = (not self.diverged and len(self.eval_steps) > 0
                       and int(self.eval_steps[-1]) < self.steps)
        return int(self.eval_steps[-1]) if ended_early else -1

    @property
    def last_finite_step(self):
        """Number of steps completed without divergence (or before a stop at chance level)."""
        if self.diverged:
            return self.diverged_step
        return self.stopped_step if self.stopped_step >= 0 else self.steps

    def to_arrays(self, prefix=""):
        """Flat ``name -> array`` mapping for :func:`shortbias_lib.runs.save_result`."""
        out = {f"{prefix}label": np.array(self.label), f"{prefix}mode": np.array(self.mode)}
        out.update({f"{prefix}{name}": np.asarray(getattr(self, name)) for name in self.ARRAYS})
        out.update({f"{prefix}{name}": np.asarray(getattr(self, name)) for name in self.SCALARS})
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix=""):
        """Inverse of :meth:`to_arrays`."""
        kwargs = {"label": str(arrays[f"{prefix}label"]), "mode": str(arrays[f"{prefix}mode"])}
        kwargs.update({name: np.asarray(arrays[f"{prefix}{name}"]) for name in cls.ARRAYS})
        for name in cls.SCALARS:
            value = arrays[f"{prefix}{name}"].item()
            kwargs[name] = value
        kwargs["diverged"] = bool(kwargs["diverged"])
        kwargs["diverged_step"] = int(kwargs["diverged_step"])
        return cls(**kwargs)


@dataclass
class OnlineProgress:
    """Where an online run stands: step, weights, hyperparameters and records so far.

    Everything a checkpoint saves besides the meta-optimizer and the samplers (whose
    ``state_dict`` it stores beside).
    """

    t: int
    train: training.TrainState
    hyper: Hyperparameters
    settled: object   # the Hyperparameters when adaptation stopped, None before
    records: dict     # per step: eff, mom, losses
    lists: dict       # eval_steps, eval_losses, adapt_steps, first, last, look_bad
    diverged_step: int = -1
    stopped_step: int = -1   # stopped at chance level (see :meth:`evaluate`)

    @classmethod
    def start(cls, params, hyper, steps):
        records = {name: np.full(steps, np.nan) for name in ("eff", "mom", "losses")}
        lists = {name: [] for name in ("eval_steps", "eval_losses", "adapt_steps", "first",
                                       "last", "look_bad")}
        return cls(0, training.init_state(params), hyper, None, records, lists)

    def evaluate(self, eval_fn, chance_patience=0):
        """Record the training-set loss now; False if the run must stop: the loss is not
        finite (a divergence), or it has been at chance level for the last ``chance_patience``
        evaluations after being below it (0: never stop so), a network killed for good."""
        if eval_fn is None:
            return True
        value = float(eval_fn(tuple(p.detach() for p in self.train.params)))
        if training.diverged(value):
            self.diverged_step = self.t
            return False
        self.lists["eval_steps"].append(self.t)
        self.lists["eval_losses"].append(value)
        start = chance_start(self.lists["eval_losses"])
        if chance_patience and start >= 0 and len(self.lists["eval_losses"]) - start >= chance_patience:
            self.stopped_step = self.t
            return False
        return True

    def adapt(self, result):
        """Take an SMD result's hyperparameters and record its meta-losses."""
        self.hyper = result.hyper
        self.lists["adapt_steps"].append(self.t)
        losses = result.meta_losses
        self.lists["first"].append(losses[0] if len(losses) else np.nan)
        self.lists["last"].append(losses[-1] if len(losses) else np.nan)
        if result.diverged:
            self.lists["look_bad"].append(self.t)

    def schedule(self, adapting, decay, final_lr, adapt_until, steps):
        """The raw-rate schedule and momentum of the next stretch of training."""
        if adapting:
            return schedules.Constant(self.hyper.lr), self.hyper.momentum
        if self.settled is None:
            self.settled = self.hyper
        one_minus = 1.0 - self.settled.momentum
        if not decay:
            return schedules.Constant(self.settled.lr), self.settled.momentum
        return (schedules.ExponentialDecay(self.settled.effective_lr * one_minus,
                                          final_lr * one_minus, steps=steps - 1 - adapt_until,
                                          t0=adapt_until),
                self.settled.momentum)

    def train_until(self, nxt, trained, mu):
        """Record a stretch of training (steps ``t`` to ``nxt``); returns the steps done."""
        t, done = self.t, len(trained.losses)
        self.records["losses"][t:t + done] = trained.losses
        self.records["eff"][t:t + done] = trained.lrs / (1.0 - mu)
        self.records["mom"][t:t + done] = mu
        if trained.diverged:
            self.diverged_step = trained.diverged_step
            self.records["losses"][self.diverged_step:] = np.nan
            self.records["eff"][self.diverged_step + 1:] = np.nan
            self.records["mom"][self.diverged_step + 1:] = np.nan
        else:
            self.train, self.t = trained.state, nxt
        return done

    def save(self, path, optimizer, samplers, meta, elapsed, leg=None):
        """Write everything needed to continue, atomically, to ``path``; ``meta`` is what a
        resumed run must match, ``leg`` the provenance of the leg writing it."""
        arrays = {f"rec_{k}": v for k, v in self.records.items()}
        arrays.update({f"list_{k}": np.asarray(v) for k, v in self.lists.items()})
        arrays.update(training.state_arrays(self.train, "w", "v"))
        settled = self.settled
        arrays.update({
            "t": self.t, "hyper": [self.hyper.lr, self.hyper.momentum],
            "settled": [settled.lr, settled.momentum] if settled is not None else [np.nan, np.nan],
            "elapsed": elapsed})
        arrays.update(_prefixed("adam_", optimizer.state_dict()))
        for name, sampler in samplers.items():
            arrays.update(_prefixed(f"{name}_", sampler.state_dict()))
        save_result(path, arrays, dict(leg or {}, config=meta))

    def restore(self, saved, optimizer, samplers):
        """Continue from :meth:`save`'s arrays; returns the seconds already spent."""
        self.t = int(saved["t"])
        for k, v in self.records.items():
            v[:] = saved[f"rec_{k}"]
        for k, v in self.lists.items():
            v.extend(saved[f"list_{k}"].tolist())
        dev, dtype = self.train.params[0].device, self.train.params[0].dtype
        self.train = training.state_from_arrays(saved, "w", "v", self.t, dev, dtype)

        def hyper(values):
            return Hyperparameters(float(values[0]), float(values[1]),
                                             learn=("lr", "momentum"), space="log")

        self.hyper = hyper(saved["hyper"])
        if np.isfinite(saved["settled"]).all():
            self.settled = hyper(saved["settled"])
        optimizer.load_state_dict(_unprefixed("adam_", saved))
        for name, sampler in samplers.items():
            sampler.load_state_dict(_unprefixed(f"{name}_", saved))
        return float(saved["elapsed"])

    def result(self, label, mode, lr, momentum, adapt_until, test_fn, seconds):
        """The finished :class:`OnlineRun`."""
        diverged = self.diverged_step >= 0
        settled = self.settled if self.settled is not None else self.hyper
        test_error = float("nan")
        if not diverged and test_fn is not None:
            test_error = float(test_fn(tuple(p.detach() for p in self.train.params)))
        ended = self.diverged_step if diverged else self.stopped_step
        reached_settling = ended < 0 or ended > adapt_until
        lists = self.lists
        return OnlineRun(
            label=label, mode=mode, init_lr=float(lr), init_momentum=float(momentum),
            eff_lr=self.records["eff"], momentum=self.records["mom"],
            losses=self.records["losses"],
            eval_steps=np.asarray(lists["eval_steps"], dtype=np.int64),
            eval_losses=np.asarray(lists["eval_losses"]),
            adapt_steps=np.asarray(lists["adapt_steps"], dtype=np.int64),
            meta_loss_first=np.asarray(lists["first"]), meta_loss_last=np.asarray(lists["last"]),
            lookahead_diverged_steps=np.asarray(lists["look_bad"], dtype=np.int64),
            diverged=diverged, diverged_step=int(self.diverged_step),
            settled_lr=settled.effective_lr if reached_settling else float("nan"),
            settled_momentum=settled.momentum if reached_settling else float("nan"),
            final_train_loss=(lists["eval_losses"][-1] if (lists["eval_losses"] and not diverged)
                              else float("nan")),
            test_error=test_error, seconds=seconds)


def _prefixed(prefix, state):
    return {prefix + key: value for key, value in state.items()}


def _unprefixed(prefix, arrays):
    return {key[len(prefix):]: arrays[key] for key in arrays if key.startswith(prefix)}

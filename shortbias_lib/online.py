"""Online stochastic meta-descent while a network trains (Section 3.3, Figures 7 and 8).

Every ``adapt_every`` training steps during the first ``adapt_until`` steps
(half of training in the paper), Algorithm 1 (:func:`shortbias_lib.hypergrad.smd`)
takes ``meta_steps`` Adam steps on ``u = (log alpha_eff, log(1 - mu))``,
``alpha_eff = alpha / (1 - mu)``, each from a ``horizon``-step lookahead that
restarts at the current weights. Two choices are ours, where the paper and
what we know of the authors' code are silent: one Adam state is kept for the
whole run, and the lookahead batches are drawn once per adaptation and shared
by its meta steps:

* stochastic lookahead: ``horizon`` fresh batches for the lookahead, the next
  ``horizon`` for the meta-objective (their mean loss at ``w_{t+T}``);
* deterministic lookahead: one batch repeated ``horizon`` times and the
  meta-objective evaluated on that same batch.

After ``adapt_until`` adaptation stops, ``mu`` is frozen and the effective
learning rate decays exponentially from its value there to ``final_lr``
(1e-4) at the last step, ``steps - 1``. The hand-tuned baseline keeps its
(alpha, mu) fixed until ``adapt_until`` and then decays the same way (what the
authors' code does). A run whose training loss becomes NaN or infinite is
stopped and recorded as diverged with its step; a lookahead that diverges
ends that adaptation (the rate keeps its last finite value) and is counted.
"""

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import batches, hypergrad, models, plot_online, schedules, training
from .profiles import check_profile, pick
from .locks import run_lock
from .progress import progress
from .runs import (REPO_ROOT, check_seed, load_matching, provenance, resolve_device, result_path, results_dir,
                   save_result)

MODES = ("baseline", "stochastic", "deterministic")
DATASET_MODELS = {"mnist": "mlp", "cifar10": "cnn"}
CHAPTER = "online_smd"

# What the paper (and the authors' code) use.
PAPER_INIT_LRS = {"mnist": (1e-3, 5e-3, 1e-2, 5e-2, 1e-1), "cifar10": (5e-4, 1e-3, 5e-3, 1e-2)}
PAPER_BASELINE_LR = {"mnist": 1e-1, "cifar10": 5e-3}


# ---------------------------------------------------------------- one run

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

    def chance_step(self, n_classes=10, tolerance=0.02):
        """First evaluation step from which the training loss stays at chance level, ``log(n_classes)``.

        A network that a too-large rate has killed (all ReLUs off) predicts
        uniformly: its loss sits at ``log(n_classes)`` without being NaN. Only
        counts if the loss was below chance before. ``-1`` if that never happens.
        """
        losses = np.asarray(self.eval_losses)
        at_chance = losses >= (1.0 - tolerance) * math.log(n_classes)
        if losses.size < 2 or not at_chance[-1] or at_chance.all():
            return -1
        below = np.flatnonzero(~at_chance)
        if below[-1] == losses.size - 1:
            return -1
        return int(self.eval_steps[below[-1] + 1])

    @property
    def last_finite_step(self):
        """Number of steps completed without divergence."""
        return self.diverged_step if self.diverged else self.steps

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


def _check_run_args(steps, adapt_every, adapt_until, meta_steps, horizon, eval_every, mode,
                    lr, momentum, final_lr):
    training.check_steps(steps, "steps", minimum=3)
    training.check_steps(adapt_every, "adapt_every")
    training.check_steps(meta_steps, "meta_steps", minimum=0)
    training.check_steps(horizon, "horizon")
    training.check_steps(eval_every, "eval_every")
    if isinstance(adapt_until, bool) or not isinstance(adapt_until, (int, np.integer)) \
            or not 0 <= adapt_until <= steps - 2:
        raise ValueError(f"adapt_until must be an integer in [0, steps - 2] = [0, {steps - 2}]; "
                         f"got {adapt_until!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    training.check_lr(lr, "lr")
    training.check_momentum(momentum)
    training.check_lr(final_lr, "final_lr")


def online_run(apply, params, train_sampler, meta_sampler, lr, momentum=0.9, *, mode="stochastic",
               steps=50000, adapt_until=None, adapt_every=10, meta_steps=100, horizon=5,
               n_eval=None, meta_lr=1e-2, clip=10.0, final_lr=1e-4, decay=True,
               eval_every=100, eval_fn=None, test_fn=None, convention="paper", label=None,
               show_progress=True, checkpoint_path=None, checkpoint_every=None,
               checkpoint_config=None, stop_after=None):
    """Train ``steps`` steps from ``params``, adapting (alpha, mu) online by SMD (Section 3.3).

    ``lr`` and ``momentum`` are the initial raw alpha and mu. ``mode`` is
    ``"baseline"`` (no adaptation), ``"stochastic"`` or ``"deterministic"``
    lookahead. ``train_sampler()`` gives the training batches,
    ``meta_sampler`` (a :class:`~shortbias_lib.batches.BatchSampler`) the
    lookahead ones. ``adapt_until`` defaults to ``steps // 2``; with
    ``decay`` the effective rate then decays to ``final_lr`` at step
    ``steps - 1``. ``eval_fn(params) -> float`` (training-set loss) is called
    every ``eval_every`` steps and at the end, ``test_fn(params) -> float``
    (test error) at the end. Returns an :class:`OnlineRun`.

    With ``checkpoint_path``, the whole state of the run (weights, velocity,
    hyperparameters, Adam state, both samplers, the records so far) is saved
    there atomically at least every ``checkpoint_every`` steps, and a run
    started again with the same ``checkpoint_config`` continues from it and
    gives the same result as one that was never interrupted. ``stop_after``
    stops at the first checkpoint at or after that step and returns ``None``
    (to test resuming).
    """
    adapt_until = steps // 2 if adapt_until is None else adapt_until
    _check_run_args(steps, adapt_every, adapt_until, meta_steps, horizon, eval_every, mode,
                    lr, momentum, final_lr)
    n_eval = horizon if n_eval is None else training.check_steps(n_eval, "n_eval")
    label = label or f"{mode} lr={lr:g}"
    started = time.perf_counter()
    hyper = hypergrad.Hyperparameters(lr=float(lr), momentum=float(momentum),
                                      learn=("lr", "momentum"), space="log")
    if mode != "baseline":  # SMD works within the authors' bounds from the start
        hyper = hyper.from_vector(np.clip(hyper.vector(), *hyper.bounds()))
    optimizer = hypergrad.make_meta_optimizer("adam", meta_lr)
    samplers = {"train": train_sampler, "meta": meta_sampler}
    run = _Progress.start(params, hyper, steps)
    ckpt_meta = {"checkpoint_config": checkpoint_config, "steps": steps, "mode": mode, "lr": lr}
    if checkpoint_path is not None:
        training.check_steps(checkpoint_every, "checkpoint_every")
        for name, sampler in samplers.items():
            if not isinstance(sampler, batches.BatchSampler):
                raise ValueError(f"{name}_sampler must be a BatchSampler to checkpoint a run")
        found = load_matching(checkpoint_path, json_ready(ckpt_meta))
        if found is not None:
            started -= run.restore(found[0], optimizer, samplers)
    last_checkpoint = run.t
    bar = progress(total=steps, initial=run.t, desc=label, leave=False) if show_progress else None
    while run.t < steps:
        t = run.t
        if checkpoint_path is not None and t >= last_checkpoint + checkpoint_every:
            run.save(checkpoint_path, optimizer, samplers, ckpt_meta, time.perf_counter() - started)
            last_checkpoint = t
            if stop_after is not None and t >= stop_after:
                if bar is not None:
                    bar.close()
                return None
        if t % eval_every == 0 and not run.evaluate(eval_fn):
            break
        adapting = t < adapt_until
        if adapting and mode != "baseline" and t % adapt_every == 0:
            lookahead, evaluation = _adaptation_batches(meta_sampler, mode, horizon, n_eval)
            run.adapt(hypergrad.smd(apply, run.train, run.hyper, horizon, meta_steps,
                                    batch_fn=lambda m: (lookahead, evaluation),
                                    meta_optimizer=optimizer, clip=clip, convention=convention,
                                    project=True))
        nxt = min(steps, (t // eval_every + 1) * eval_every)
        if adapting:
            nxt = min(nxt, adapt_until, (t // adapt_every + 1) * adapt_every)
        schedule, mu = run.schedule(adapting, decay, final_lr, adapt_until, steps)
        done = run.train_until(nxt, training.train(apply, run.train, train_sampler, nxt - t,
                                                   schedule, mu, convention=convention), mu)
        if bar is not None:
            bar.update(done)
        if run.diverged_step >= 0:
            break
    else:
        run.evaluate(eval_fn)
    if bar is not None:
        bar.close()
    return run.result(label, mode, lr, momentum, adapt_until, test_fn,
                      time.perf_counter() - started)


def _adaptation_batches(meta_sampler, mode, horizon, n_eval):
    """The lookahead's batches and the meta-objective's, drawn once per adaptation."""
    if mode == "deterministic":
        batch = meta_sampler()
        return [batch] * horizon, [batch]
    return meta_sampler.take(horizon), meta_sampler.take(n_eval)


@dataclass
class _Progress:
    """Where an online run stands: step, weights, hyperparameters and records so far.

    Everything a checkpoint saves besides the meta-optimizer and the samplers (whose
    ``state_dict`` it stores beside).
    """

    t: int
    train: training.TrainState
    hyper: hypergrad.Hyperparameters
    settled: object   # the Hyperparameters when adaptation stopped, None before
    records: dict     # per step: eff, mom, losses
    lists: dict       # eval_steps, eval_losses, adapt_steps, first, last, look_bad
    diverged_step: int = -1

    @classmethod
    def start(cls, params, hyper, steps):
        records = {name: np.full(steps, np.nan) for name in ("eff", "mom", "losses")}
        lists = {name: [] for name in ("eval_steps", "eval_losses", "adapt_steps", "first",
                                       "last", "look_bad")}
        return cls(0, training.init_state(params), hyper, None, records, lists)

    def evaluate(self, eval_fn):
        """Record the training-set loss now; False (and the divergence) if it is not finite."""
        if eval_fn is None:
            return True
        value = float(eval_fn(tuple(p.detach() for p in self.train.params)))
        if training.diverged(value):
            self.diverged_step = self.t
            return False
        self.lists["eval_steps"].append(self.t)
        self.lists["eval_losses"].append(value)
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

    def save(self, path, optimizer, samplers, meta, elapsed):
        """Write everything needed to continue, atomically, to ``path``."""
        arrays = {f"rec_{k}": v for k, v in self.records.items()}
        arrays.update({f"list_{k}": np.asarray(v) for k, v in self.lists.items()})
        arrays.update({f"w{i}": p.detach().cpu().numpy() for i, p in enumerate(self.train.params)})
        arrays.update({f"v{i}": q.detach().cpu().numpy() for i, q in enumerate(self.train.velocity)})
        settled = self.settled
        arrays.update({
            "t": self.t, "hyper": [self.hyper.lr, self.hyper.momentum],
            "settled": [settled.lr, settled.momentum] if settled is not None else [np.nan, np.nan],
            "elapsed": elapsed})
        arrays.update(_prefixed("adam_", optimizer.state_dict()))
        for name, sampler in samplers.items():
            arrays.update(_prefixed(f"{name}_", sampler.state_dict()))
        save_result(path, arrays, {"config": meta})

    def restore(self, saved, optimizer, samplers):
        """Continue from :meth:`save`'s arrays; returns the seconds already spent."""
        self.t = int(saved["t"])
        for k, v in self.records.items():
            v[:] = saved[f"rec_{k}"]
        for k, v in self.lists.items():
            v.extend(saved[f"list_{k}"].tolist())
        n = len(self.train.params)
        dev, dtype = self.train.params[0].device, self.train.params[0].dtype
        self.train = training.TrainState(
            tuple(torch.from_numpy(saved[f"w{i}"]).to(dev, dtype) for i in range(n)),
            tuple(torch.from_numpy(saved[f"v{i}"]).to(dev, dtype) for i in range(n)), self.t)

        def hyper(values):
            return hypergrad.Hyperparameters(float(values[0]), float(values[1]),
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
        reached_settling = not diverged or self.diverged_step > adapt_until
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


def json_ready(config):
    """``config`` after a JSON round trip (what :func:`shortbias_lib.runs.load_matching` compares)."""
    import json

    return json.loads(json.dumps(config, sort_keys=True, default=str))


# ---------------------------------------------------------------- profiles and experiment

# The paper's scale, shared by ``paper`` and ``archive``.
PAPER_SIZES = dict(steps=50000, adapt_every=10, meta_steps=100, meta_lr=1e-2, horizon=5,
                   batch_size=100, eval_every=100, n_train=None, n_eval_train=None, n_test=None,
                   checkpoint_every=1000)
# ``archive``: MNIST at the paper's scale on one CPU core (about 1.5 hours), committed in
# ``archive/``. Only the meta steps per adaptation differ: 20 at Adam step 5e-2 instead of
# 100 at 1e-2 (the same largest move of log alpha per adaptation, a fifth of the cost).
ARCHIVE_SIZES = {"mnist": dict(PAPER_SIZES, meta_steps=20, meta_lr=5e-2,
                               init_lrs=PAPER_INIT_LRS["mnist"], det_lrs=())}
EXTRA_PROFILES = ("archive",)
ARCHIVE_DIR = "archive"
ARCHIVE_COMMAND = "python -m shortbias_lib online --profile archive --results archive"


def sizes(profile):
    """Sizes of the online experiment for ``profile``, per data set (see the chapter for why)."""
    check_profile(profile, extra=EXTRA_PROFILES)
    if profile in EXTRA_PROFILES:
        return ARCHIVE_SIZES
    return pick(profile, {
        "smoke": {
            "mnist": dict(steps=40, adapt_every=10, meta_steps=2, meta_lr=5e-2, horizon=3,
                          batch_size=20, eval_every=20, n_train=400, n_eval_train=200,
                          n_test=200, init_lrs=(1e-2,), det_lrs=()),
            "cifar10": dict(steps=20, adapt_every=10, meta_steps=1, meta_lr=5e-2, horizon=2,
                            batch_size=10, eval_every=10, n_train=100, n_eval_train=50,
                            n_test=50, init_lrs=(1e-3,), det_lrs=(1e-3,)),
        },
        "quick": {
            "mnist": dict(steps=2000, adapt_every=10, meta_steps=10, meta_lr=5e-2, horizon=5,
                          batch_size=100, eval_every=100, n_train=None, n_eval_train=2000,
                          n_test=2000, init_lrs=(1e-3, 1e-2, 1e-1), det_lrs=(1e-2,)),
            "cifar10": dict(steps=800, adapt_every=10, meta_steps=5, meta_lr=5e-2, horizon=5,
                            batch_size=25, eval_every=50, n_train=10000, n_eval_train=1000,
                            n_test=1000, init_lrs=(1e-3, 5e-3), det_lrs=(5e-3,)),
        },
        "paper": {
            "mnist": dict(PAPER_SIZES, init_lrs=PAPER_INIT_LRS["mnist"], det_lrs=()),
            "cifar10": dict(PAPER_SIZES, init_lrs=PAPER_INIT_LRS["cifar10"],
                            det_lrs=PAPER_INIT_LRS["cifar10"]),
        },
    })


def run_key(dataset, mode, lr):
    """Name of one run inside the result file, e.g. ``cifar10__deterministic__0.001``."""
    return f"{dataset}__{mode}__{lr:g}"


def _model(dataset, filter_size, init_std, device):
    name = DATASET_MODELS[dataset]
    init, apply = models.MODELS[name]
    if name == "cnn":
        def make(generator):
            return init(generator, filter_size=filter_size, init_std=init_std, device=device)
    else:
        def make(generator):
            return init(generator, init_std=init_std, device=device)
    return make, apply


def run_dataset(dataset, profile="quick", *, device="auto", seed=0, data_root=None, results=None,
                resume=True, convention="paper", filter_size=3, init_std=0.1, momentum=0.9,
                show_progress=True, overrides=None):
    """All runs of one data set (baseline, stochastic and deterministic SMD); returns a dict.

    Each finished run is saved as a checkpoint under ``results/checkpoints``
    (``online_<profile>_seed<seed>_<key>.npz``, see :func:`checkpoint_path`) and
    reused when ``resume`` is true and its configuration matches; a run holds the
    file's :func:`~shortbias_lib.locks.run_lock` while it computes. ``overrides``
    replaces entries of :func:`sizes` (for exploring other sizes). Returns
    ``{"runs": {key: OnlineRun}, "config": dict, "source": str}``.
    """
    from . import data

    check_profile(profile, extra=EXTRA_PROFILES)
    seed = check_seed(seed)
    if dataset not in DATASET_MODELS:
        raise ValueError(f"dataset must be one of {', '.join(DATASET_MODELS)}; got {dataset!r}")
    dev = resolve_device(device)
    folder = results_dir(results) / "checkpoints"
    if dataset not in sizes(profile):
        raise ValueError(f"dataset must be one of {', '.join(sizes(profile))} in profile "
                         f"{profile!r}; got {dataset!r}")
    cfg = dict(sizes(profile)[dataset], **(overrides or {}))
    train_set = data.load(dataset, train=True, root=data_root, limit=cfg["n_train"])
    test_set = data.load(dataset, train=False, root=data_root, limit=cfg["n_test"])
    eval_x = train_set.images[:cfg["n_eval_train"]].to(dev)
    eval_y = train_set.labels[:cfg["n_eval_train"]].to(dev)
    test_x, test_y = test_set.images.to(dev), test_set.labels.to(dev)
    make, apply = _model(dataset, filter_size, init_std, dev)
    params = make(torch.Generator().manual_seed(seed))

    def eval_fn(p):
        return models.mean_loss(apply, p, eval_x, eval_y, chunk=1000)

    def test_fn(p):
        return models.error_rate(apply, p, test_x, test_y, chunk=1000)

    config = dict(cfg, dataset=dataset, run_seed=seed, convention=convention,
                  filter_size=filter_size if dataset == "cifar10" else None, init_std=init_std,
                  momentum=momentum, baseline_lr=PAPER_BASELINE_LR[dataset], final_lr=1e-4,
                  adapt_until=cfg["steps"] // 2, source=train_set.source,
                  data_fingerprint=[train_set.fingerprint, test_set.fingerprint],
                  n_train_used=len(train_set), n_test_used=len(test_set),
                  init_lrs=list(cfg["init_lrs"]), det_lrs=list(cfg["det_lrs"]))
    plan = [("baseline", PAPER_BASELINE_LR[dataset])]
    plan += [("stochastic", lr) for lr in cfg["init_lrs"]]
    plan += [("deterministic", lr) for lr in cfg["det_lrs"]]
    runs = {}
    for mode, lr in progress(plan, desc=f"online {dataset}", disable=None if show_progress else True):
        key = run_key(dataset, mode, lr)
        path = checkpoint_path(profile, seed, key, folder)
        run_config = dict(config, mode=mode, lr=lr, chapter=CHAPTER)
        expected = _run_expected(cfg["steps"])
        found = load_matching(path, run_config, expected) if resume else None
        if found is not None:
            runs[key] = OnlineRun.from_arrays(found[0])
            continue
        with run_lock(path):
            partial = path.with_suffix(".partial.npz")
            if not resume:
                partial.unlink(missing_ok=True)
            train_sampler = batches.BatchSampler.from_dataset(train_set, cfg["batch_size"], seed, dev)
            meta_sampler = batches.BatchSampler.from_dataset(train_set, cfg["batch_size"], seed + 1,
                                                              dev)
            run = online_run(apply, params, train_sampler, meta_sampler, lr, momentum, mode=mode,
                             steps=cfg["steps"], adapt_every=cfg["adapt_every"],
                             meta_steps=cfg["meta_steps"], horizon=cfg["horizon"],
                             meta_lr=cfg["meta_lr"], eval_every=cfg["eval_every"], eval_fn=eval_fn,
                             test_fn=test_fn, convention=convention, label=key,
                             show_progress=show_progress,
                             checkpoint_path=partial if cfg.get("checkpoint_every") else None,
                             checkpoint_every=cfg.get("checkpoint_every"),
                             checkpoint_config=run_config)
            save_result(path, run.to_arrays(), provenance(profile, dev, seed, **run_config))
            partial.unlink(missing_ok=True)
        runs[key] = run
    return {"runs": runs, "config": config, "source": train_set.source}


def checkpoint_path(profile, seed, key, folder):
    """File of one finished run in ``folder``: ``online_<profile>_seed<seed>_<key>.npz``
    (its partial checkpoint: the same with ``.partial.npz``)."""
    return Path(folder) / f"online_{profile}_seed{check_seed(seed)}_{key}.npz"


def _run_expected(steps):
    """What a finished run's file must hold (see :meth:`OnlineRun.to_arrays`)."""
    expected = {name: () for name in OnlineRun.SCALARS + ("label", "mode")}
    expected.update({name: None for name in OnlineRun.ARRAYS})
    expected.update(eff_lr=(steps,), momentum=(steps,), losses=(steps,))
    return expected


def run_online(profile="quick", *, device="auto", seed=0, data_root=None, results=None, resume=True,
               datasets=None, convention="paper", filter_size=3, show_progress=True):
    """Figures 7 and 8: online SMD on MNIST and CIFAR-10; writes ``online_<profile>_seed<seed>.npz``.

    Returns ``{dataset: run_dataset(...) result}``. The result file holds
    every run's arrays under the prefix ``<dataset>__<mode>__<lr>__`` and a
    configuration with ``chapter``. The paper reports no number for these
    experiments, so the file holds no ``reported_*`` arrays. A second run of the
    same profile and seed started while this one computes is refused
    (:func:`~shortbias_lib.locks.run_lock`). ``datasets`` defaults to those of the
    profile (``archive``: MNIST only).
    """
    check_profile(profile, extra=EXTRA_PROFILES)
    seed = check_seed(seed)
    datasets = tuple(sizes(profile)) if datasets is None else tuple(datasets)
    dev = resolve_device(device)
    path = result_path("online", profile, seed, results)
    with run_lock(path):
        out, arrays, config = {}, {}, {"chapter": CHAPTER, "datasets": list(datasets)}
        for dataset in datasets:
            result = run_dataset(dataset, profile, device=device, seed=seed, data_root=data_root,
                                 results=results, resume=resume, convention=convention,
                                 filter_size=filter_size, show_progress=show_progress)
            out[dataset] = result
            config[dataset] = result["config"]
            for key, run in result["runs"].items():
                arrays.update(run.to_arrays(prefix=f"{key}__"))
        arrays["run_keys"] = np.array(sorted(k for r in out.values() for k in r["runs"]))
        save_result(path, arrays, provenance(profile, dev, seed, **config))
    if sys.stdout.isatty():  # a short summary for the shell; notebooks show tables instead
        print(f"wrote {path}")
        for dataset, result in out.items():
            print(f"{dataset} ({result['source']}):")
            for row in plot_online.summary_rows(result["runs"]):
                state = ("diverged at step %d" % row["diverged_step"]
                         if row["diverged_step"] is not None else
                         f"final training loss {row['final_train_loss']:.4g}, "
                         f"test error {row['test_error']:.2%}")
                print(f"  {row['run']:32s} settled eff. lr {row['settled_eff_lr']:.3g}, {state}")
    return out


def runs_from_file(path):
    """``{key: OnlineRun}`` and the provenance from a file written by :func:`run_online`."""
    from .runs import load_result

    arrays, meta = load_result(path)
    return {str(k): OnlineRun.from_arrays(arrays, prefix=f"{k}__") for k in arrays["run_keys"]}, meta


def archive_path(seed=0):
    """The committed result of the ``archive`` profile (MNIST at the paper's scale)."""
    return REPO_ROOT / ARCHIVE_DIR / f"online_archive_seed{check_seed(seed)}.npz"

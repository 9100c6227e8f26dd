"""Online stochastic meta-descent while a network trains (Section 3.3, Figures 7 and 8).

Every ``adapt_every`` training steps during the first ``adapt_until`` steps
(half of training in the paper), Algorithm 1 (:func:`shortbias_lib.engine.hypergrad.smd`)
takes ``meta_steps`` Adam steps on ``u = (log alpha_eff, log(1 - mu))``,
``alpha_eff = alpha / (1 - mu)``, each from a ``horizon``-step lookahead that
restarts at the current weights. One Adam state is kept for the whole run (our
choice: the paper is silent). The minibatches follow Algorithm 1, which calls
GetMiniBatch inside its meta-step loop: with ``meta_batches="fresh"`` (the
default) every meta step draws its own, with ``"shared"`` they are drawn once
per adaptation and reused by all its meta steps (a different estimator, kept
as an option because it moves the adapted rates):

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
ends that adaptation (the rate keeps its last finite value) and is counted. A run whose
training loss has fallen back to chance level, ``log 10``, for ``chance_patience``
evaluations in a row is stopped there too: the network is dead (at the paper's scale every
second-layer ReLU was off) and no later step can revive it, so the rest would only spend hours.
"""

import time
from dataclasses import dataclass

import numpy as np

from ...engine import batches, hypergrad, training
from ...engine.hyperparams import Hyperparameters
from ...engine.meta_optim import make_meta_optimizer
from .record import OnlineProgress
from ...progress import progress
from ...runs import after_checkpoint, legs_so_far, load_matching

MODES = ("baseline", "stochastic", "deterministic")
META_BATCHES = ("fresh", "shared")


@dataclass(frozen=True)
class OnlineSettings:
    """How one online run trains and adapts (checked when made).

    ``mode`` is ``"baseline"`` (no adaptation), ``"stochastic"`` or
    ``"deterministic"`` lookahead. ``adapt_until`` defaults to ``steps // 2`` and
    ``n_eval`` (batches of the stochastic meta-objective) to ``horizon``; with
    ``decay`` the effective rate decays to ``final_lr`` at step ``steps - 1``.
    ``clip`` bounds each raw hypergradient, ``meta_lr`` is Adam's step on ``u``, and the
    training-set loss is measured every ``eval_every`` steps. ``meta_batches`` is
    ``"fresh"`` (each meta step draws its own minibatches, as Algorithm 1) or ``"shared"``
    (drawn once per adaptation). ``chance_patience`` evaluations in a row at chance level
    (after a loss below it) stop the run (0: never).
    """

    mode: str = "stochastic"
    steps: int = 50000
    adapt_until: int = None
    adapt_every: int = 10
    meta_steps: int = 100
    horizon: int = 5
    n_eval: int = None
    meta_lr: float = 1e-2
    clip: float = 10.0
    final_lr: float = 1e-4
    decay: bool = True
    eval_every: int = 100
    convention: str = "paper"
    meta_batches: str = "fresh"
    chance_patience: int = 20

    def __post_init__(self):
        steps = training.check_steps(self.steps, "steps", minimum=3)
        adapt_until = steps // 2 if self.adapt_until is None else self.adapt_until
        training.check_steps(self.adapt_every, "adapt_every")
        training.check_steps(self.meta_steps, "meta_steps", minimum=0)
        training.check_steps(self.horizon, "horizon")
        training.check_steps(self.eval_every, "eval_every")
        training.check_steps(self.chance_patience, "chance_patience", minimum=0)
        if isinstance(adapt_until, bool) or not isinstance(adapt_until, (int, np.integer)) \
                or not 0 <= adapt_until <= steps - 2:
            raise ValueError(f"adapt_until must be an integer in [0, steps - 2] = [0, {steps - 2}]; "
                             f"got {adapt_until!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.meta_batches not in META_BATCHES:
            raise ValueError(f"meta_batches must be one of {', '.join(META_BATCHES)}; "
                             f"got {self.meta_batches!r}")
        training.check_lr(self.final_lr, "final_lr")
        training.check_lr(self.meta_lr, "meta_lr")
        training.check_lr(self.clip, "clip")  # finite and > 0, as a rate
        n_eval = self.horizon if self.n_eval is None else training.check_steps(self.n_eval, "n_eval")
        object.__setattr__(self, "adapt_until", adapt_until)  # the defaults, resolved
        object.__setattr__(self, "n_eval", n_eval)


@dataclass(frozen=True)
class Checkpointing:
    """Save an online run's whole state to ``path`` at least every ``every`` steps.

    A run started again with the same ``config`` continues from the file and gives
    the same result as one never interrupted. ``stop_after`` stops at the first
    checkpoint at or after that step (to test resuming). ``provenance``
    (:func:`~shortbias_lib.runs.provenance` of this leg, taken when it starts) is saved
    with each checkpoint, its ``stage`` the step reached, so the finished run can list
    the legs it resumed (:attr:`OnlineRun.earlier_legs`).
    """

    path: object
    every: int
    config: object = None
    stop_after: int = None
    provenance: dict = None


def online_run(apply, params, train_sampler, meta_sampler, lr, momentum=0.9, *,
               settings=OnlineSettings(), eval_fn=None, test_fn=None, label=None, show_progress=True,
               checkpoint=None):
    """Train ``settings.steps`` steps from ``params``, adapting (alpha, mu) online by SMD (Section 3.3).

    ``lr`` and ``momentum`` are the initial raw alpha and mu. ``train_sampler()``
    gives the training batches, ``meta_sampler`` (a
    :class:`~shortbias_lib.engine.batches.BatchSampler`) the lookahead ones.
    ``eval_fn(params) -> float`` (training-set loss) is called every
    ``settings.eval_every`` steps and at the end, ``test_fn(params) -> float``
    (test error) at the end. Returns an
    :class:`~shortbias_lib.experiments.online.record.OnlineRun`, or ``None`` when
    ``checkpoint.stop_after`` stopped it. With ``checkpoint`` (a
    :class:`Checkpointing`), the whole state of the run (weights, velocity,
    hyperparameters, Adam state, both samplers, the records so far) is saved
    atomically as it goes, and a run started again continues from it; under a
    :func:`~shortbias_lib.runs.time_budget` the run stops at a checkpoint once it is spent.
    """
    s = settings
    training.check_lr(lr, "lr")
    training.check_momentum(momentum)
    label = label or f"{s.mode} lr={lr:g}"
    started = time.perf_counter()
    hyper = Hyperparameters(lr=float(lr), momentum=float(momentum),
                                      learn=("lr", "momentum"), space="log")
    if s.mode != "baseline":  # SMD works within the authors' bounds from the start
        hyper = hyper.from_vector(np.clip(hyper.vector(), *hyper.bounds()))
    optimizer = make_meta_optimizer("adam", s.meta_lr)
    samplers = {"train": train_sampler, "meta": meta_sampler}
    run = OnlineProgress.start(params, hyper, s.steps)
    ckpt_meta, earlier_legs = None, []
    if checkpoint is not None:
        ckpt_meta = {"checkpoint_config": checkpoint.config, "steps": s.steps, "mode": s.mode, "lr": lr}
        spent, earlier_legs = _resume(checkpoint, run, optimizer, samplers, ckpt_meta)
        started -= spent
    last_checkpoint = run.t
    bar = progress(total=s.steps, initial=run.t, desc=label, leave=False) if show_progress else None
    while run.t < s.steps:
        t = run.t
        if checkpoint is not None and t >= last_checkpoint + checkpoint.every:
            leg = dict(checkpoint.provenance or {}, stage=f"step {t}", earlier_legs=earlier_legs)
            run.save(checkpoint.path, optimizer, samplers, ckpt_meta, time.perf_counter() - started, leg)
            last_checkpoint = t
            after_checkpoint(f"{label}, step {t}")  # a time-bounded leg stops here
            if checkpoint.stop_after is not None and t >= checkpoint.stop_after:
                if bar is not None:
                    bar.close()
                return None
        if t % s.eval_every == 0 and not run.evaluate(eval_fn, s.chance_patience):
            break
        adapting = t < s.adapt_until
        if adapting and s.mode != "baseline" and t % s.adapt_every == 0:
            run.adapt(hypergrad.smd(apply, run.train, run.hyper, s.horizon, s.meta_steps,
                                    _adaptation_batches(meta_sampler, s),
                                    optimizer=optimizer, clip=s.clip, convention=s.convention))
        nxt = _next_stop(t, s, adapting)
        schedule, mu = run.schedule(adapting, s.decay, s.final_lr, s.adapt_until, s.steps)
        done = run.train_until(nxt, training.train(apply, run.train, train_sampler, nxt - t,
                                                   schedule, mu, convention=s.convention), mu)
        if bar is not None:
            bar.update(done)
        if run.diverged_step >= 0:
            break
    else:
        run.evaluate(eval_fn)
    if bar is not None:
        bar.close()
    finished = run.result(label, s.mode, lr, momentum, s.adapt_until, test_fn,
                          time.perf_counter() - started)
    finished.earlier_legs = earlier_legs
    return finished


def _resume(checkpoint, run, optimizer, samplers, ckpt_meta):
    """Continue ``run`` from ``checkpoint.path`` if it was saved with ``ckpt_meta``; returns
    the seconds the saved run had already spent and the legs that computed it
    (:func:`~shortbias_lib.runs.legs_so_far`; 0 and none without a matching file)."""
    training.check_steps(checkpoint.every, "checkpoint_every")
    for name, sampler in samplers.items():
        if not isinstance(sampler, batches.BatchSampler):
            raise ValueError(f"{name}_sampler must be a BatchSampler to checkpoint a run")
    found = load_matching(checkpoint.path, ckpt_meta)
    if found is None:
        return 0.0, []
    arrays, meta = found
    return run.restore(arrays, optimizer, samplers), legs_so_far(dict(meta, stage=f"step {int(arrays['t'])}"))


def _next_stop(t, settings, adapting):
    """The step where the stretch of training from ``t`` stops: the next evaluation, and while
    adapting the next adaptation or the end of adaptation."""
    nxt = min(settings.steps, (t // settings.eval_every + 1) * settings.eval_every)
    if adapting:
        nxt = min(nxt, settings.adapt_until, (t // settings.adapt_every + 1) * settings.adapt_every)
    return nxt


def _adaptation_batches(meta_sampler, settings):
    """``batches(m)`` of one adaptation's SMD (:func:`~shortbias_lib.engine.hypergrad.smd`): fresh
    minibatches at every meta step, or (``"shared"``) one set drawn now for all of them."""
    deterministic = settings.mode == "deterministic"
    if settings.meta_batches == "fresh":
        return hypergrad.lookahead_batches(meta_sampler, settings.horizon, settings.n_eval, deterministic)
    if deterministic:
        batch = meta_sampler()
        drawn = [batch] * settings.horizon, [batch]
    else:
        drawn = meta_sampler.take(settings.horizon), meta_sampler.take(settings.n_eval)
    return lambda m: drawn

"""Stochastic meta-descent on the offline experiment's schedule (Algorithm 1 on
``(log alpha_0/(1-mu), log beta)``, run by :func:`shortbias_lib.engine.hypergrad.smd`), resumable,
and the trajectories read back from a result."""

import math
from dataclasses import dataclass

import numpy as np

from ...engine.hypergrad import SMDHistory, smd
from ...engine.hyperparams import Hyperparameters
from ...engine.meta_optim import Adam
from ...engine.models import mlp_apply
from ...engine.schedules import ExponentialDecay
from .config import with_smd_annealing


def smd_hyperparameters(alpha0, beta, K, momentum=0.9):
    """The offline experiment's SMD start: ``alpha_0``, ``beta`` learned as ``(log alpha_0/(1-mu), log beta)``."""
    return Hyperparameters(lr=float(alpha0), momentum=momentum, beta=float(beta), K=K,
                           learn=("lr", "beta"), space="log")


def smd_meta_lr(config, horizon):
    """The Adam meta learning rate of the SMD run at ``horizon`` (a number, or a schedule of the
    meta step): ``smd_meta_lr`` up to meta step ``smd_anneal_from``, then decaying geometrically
    to ``smd_meta_lr_final`` at the last meta step (a fixed step on noisy hypergradients only
    wanders; a decaying one can settle)."""
    config = with_smd_annealing(config)
    k = config["smd_horizons"].index(horizon)
    steps, start = int(config["smd_meta_steps"][k]), int(config["smd_anneal_from"][k])
    if start >= steps - 1:
        return config["smd_meta_lr"]
    return ExponentialDecay(config["smd_meta_lr"], config["smd_meta_lr_final"], steps - 1 - start, t0=start)


def smd_trajectory(state, hyper, horizon, meta_steps, batches, objective_batches, *, meta_lr=0.01,
                   clip=10.0, convention="paper", resume=None, on_step=None):
    """SMD (Algorithm 1, :func:`shortbias_lib.engine.hypergrad.smd`) of the MLP from ``state`` with Adam, resumable.

    ``hyper`` is :func:`smd_hyperparameters`'s. Meta step ``m`` trains on batches
    ``m * horizon, ..., (m + 1) * horizon - 1`` of ``batches`` (fresh,
    reproducible, drawn one at a time so memory does not grow with the horizon)
    and differentiates the mean loss on ``objective_batches`` at ``w_T``. ``meta_lr`` is
    Adam's (a number or a schedule of the meta step, :func:`smd_meta_lr`). A
    lookahead that diverges counts as a hypergradient of ``+clip`` on the
    learning rate (step back) and a NaN meta-loss. ``resume`` is a dict from
    an earlier call (or checkpoint); ``on_step(done, snapshot)`` is called
    after each meta step, ``snapshot()`` giving that dict so far
    (:func:`checkpointing` makes one). Returns a dict: ``u`` (M+1, 2),
    ``meta_loss`` (M,), ``hypergrad`` (M, 2), ``adam_m``, ``adam_s``, ``adam_t``.
    """
    optimizer = Adam(meta_lr)
    history = None
    if resume is not None:
        history = SMDHistory(list(np.asarray(resume["u"])), list(np.asarray(resume["meta_loss"])),
                             list(np.asarray(resume["hypergrad"]).reshape(-1, 2)))
        optimizer.load_state_dict({key: resume[f"adam_{key}"] for key in ("m", "s", "t")})

    def step_batches(m):
        return (batches(m * horizon + i) for i in range(horizon)), objective_batches

    def callback(m, history):
        if on_step is not None:
            on_step(m + 1, lambda: _smd_state(history, optimizer))

    result = smd(mlp_apply, state, hyper, horizon, meta_steps, step_batches, optimizer=optimizer, clip=clip,
                 convention=convention, on_divergence="step_back", resume=history, callback=callback)
    return _smd_state(result, optimizer)


def checkpointing(save, every, meta_steps, progress=None):
    """An ``on_step`` for :func:`smd_trajectory`: advance ``progress`` by one meta step and
    ``save(state dict)`` every ``every`` meta steps and after the last (never when ``every`` is 0)."""

    def on_step(done, snapshot):
        if progress is not None:
            progress.update(1)
        if every and (done % every == 0 or done == meta_steps):
            save(snapshot())

    return on_step


def _smd_state(history, optimizer):
    return {"u": np.asarray(history.trajectory, dtype=np.float64).reshape(-1, 2),
            "meta_loss": np.asarray(history.meta_losses, dtype=np.float64),
            "hypergrad": np.asarray(history.hypergrads, dtype=np.float64).reshape(-1, 2),
            **{f"adam_{key}": np.asarray(value) for key, value in optimizer.state_dict().items()}}


def smd_log10(u, momentum):
    """``(log10 alpha_0, log10 beta)`` from SMD coordinates ``(log alpha_0/(1-mu), log beta)``."""
    u = np.asarray(u, dtype=np.float64)
    return (u[..., 0] + math.log1p(-momentum)) / math.log(10), u[..., 1] / math.log(10)


def smd_trajectories(arrays, config):
    """The SMD runs of a result: list of dicts (horizon, beta0, log10 alpha0/beta path, meta losses)."""
    out = []
    starts = [(h, b) for h in config["smd_horizons"] for b in config["smd_betas"]]
    for j, (h, beta0) in enumerate(starts):
        if f"smd_{j}_u" not in arrays:
            continue
        la, lb = smd_log10(arrays[f"smd_{j}_u"], config["momentum"])
        out.append({"horizon": int(h), "beta0": float(beta0), "log10_alpha0": la, "log10_beta": lb,
                    "meta_loss": arrays[f"smd_{j}_meta_loss"],
                    "hypergrad": np.asarray(arrays[f"smd_{j}_hypergrad"]).reshape(-1, 2)})
    return out


@dataclass(frozen=True)
class SMDState:
    """Where an SMD run stands at its end (:func:`smd_state`): ``state`` is ``"converged"``,
    ``"still moving"`` or ``"collapsed"``; ``since`` the meta step a collapse began (else -1);
    ``episode`` the first meta step and length of its longest stretch at the untrained level
    (``(-1, 0)`` if none), so that a collapse it recovered from stays visible; ``untrained_recent``
    how many of the last ``window`` meta steps had a lookahead ending at that level."""

    state: str
    reason: str
    since: int
    drift: tuple
    window: int
    largest_hypergrad: float
    largest_at: int
    episode: tuple
    untrained_recent: int


def collapse_start(state, pinned=10):
    """The meta step a run's collapse began (:class:`SMDState`): one lasting to the end, else one of
    at least ``pinned`` meta steps at the untrained level that it recovered from; -1 if neither."""
    if state.state == "collapsed":
        return state.since
    start, length = state.episode
    return start if length >= pinned else -1


def smd_state(run, config, *, window=1 / 3, min_window=10, tol=0.1, pinned=10, margin=0.01):
    """The state of one run of :func:`smd_trajectories` by a stated criterion.

    - collapsed: from some meta step to the end the meta-loss is non-finite or
      within ``margin`` (relative) of the untrained level ``ln(classes)`` (the
      loss of a constant uniform output; a single meta step below it between
      two at it, one lucky lookahead, does not end a collapse), or ``alpha_0``
      or ``beta`` sits at one of the authors' bounds for the last ``pinned`` meta steps;
    - converged: otherwise, if over the last ``window`` of the meta steps (at
      least ``min_window``) the least-squares line through ``log10 alpha_0``
      and through ``log10 beta`` each changes by less than ``tol`` decades;
    - still moving: otherwise.
    """
    loss = np.asarray(run["meta_loss"], dtype=np.float64)
    untrained = math.log(int(config["sizes"][-1]))
    grads = np.abs(np.asarray(run["hypergrad"], dtype=np.float64)).max(axis=1)
    at = int(np.nanargmax(grads)) if len(grads) else -1
    largest = float(np.asarray(run["hypergrad"])[at][np.argmax(np.abs(run["hypergrad"][at]))]) if at >= 0 else 0.0
    path = np.stack([run["log10_alpha0"], run["log10_beta"]], axis=1)            # (M + 1, 2)
    width = min(len(path) - 1, max(int(min_window), int(round(window * (len(path) - 1)))))
    if width >= 2:
        x = np.arange(width + 1)
        drift = tuple(float(np.polyfit(x, path[-width - 1:, c], 1)[0] * width) for c in range(2))
    else:
        drift = (math.nan, math.nan)
    at_level = ~np.isfinite(loss) | (loss >= (1 - margin) * untrained)
    dead = at_level.copy()
    dead[1:-1] |= at_level[:-2] & at_level[2:]
    edges = np.diff(np.concatenate([[0], dead.astype(int), [0]]))
    begins, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    k = int(np.argmax(ends - begins)) if len(begins) else -1
    common = {"drift": drift, "window": width, "largest_hypergrad": largest, "largest_at": at,
              "episode": (int(begins[k]), int(ends[k] - begins[k])) if k >= 0 else (-1, 0),
              "untrained_recent": int(at_level[len(at_level) - width:].sum()) if width > 0 else 0}
    if len(dead) and dead[-1]:
        since = len(dead) - int(np.argmin(dead[::-1])) if not dead.all() else 0
        return SMDState("collapsed", f"meta-loss at the untrained level ln {int(config['sizes'][-1])} = "
                        f"{untrained:.3g} from meta step {since}", since, **common)
    hyper = smd_hyperparameters(1.0, 1.0, float(config["K"]), config["momentum"])
    low, high = (np.stack(smd_log10(b, config["momentum"]), axis=-1) for b in hyper.bounds())
    at_bound = np.isclose(path, low, atol=1e-9) | np.isclose(path, high, atol=1e-9)    # (M + 1, 2)
    for c, name in enumerate(("alpha_0", "beta")):
        if len(path) > pinned and at_bound[-pinned:, c].all():
            since = len(path) - int(np.argmin(at_bound[::-1, c]))
            return SMDState("collapsed", f"{name} pinned at a bound from meta step {since}", since, **common)
    if width >= 2 and max(abs(d) for d in drift) < tol:
        return SMDState("converged", f"drift below {tol:g} decade over the last {width} meta steps", -1, **common)
    return SMDState("still moving", f"drift of {max(drift, key=abs):+.2f} decade over the last {width} meta steps",
                    -1, **common)


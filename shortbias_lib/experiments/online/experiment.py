"""The online SMD experiment (Section 3.3, Figures 7 and 8): its sizes per profile, its runs on
MNIST and CIFAR-10, and its files.

Each data set gets one hand-tuned baseline run and SMD runs from several initial rates,
with a stochastic lookahead (Figure 7) and a deterministic one (Figure 8); each run is
:func:`shortbias_lib.experiments.online.loop.online_run`. Every finished run is a file of its own under
``results/checkpoints`` (with a partial checkpoint while it trains), so an interrupted
experiment resumes run by run; :func:`run_online` then gathers them into one result file.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

from ...engine import batches, models
from . import figures as plot_online
from .loop import Checkpointing, OnlineSettings, online_run
from .record import OnlineRun
from ...locks import run_lock
from ...profiles import PROFILES, pick
from ...runs import (REPO_ROOT, Result, check_seed, load_matching, load_result, partial_path, provenance,
                   resolve_device, result_path, results_dir, run_shared, save_result, utc_now)

DATASET_MODELS = {"mnist": "mlp", "cifar10": "cnn"}
CHAPTER = "online_smd"

# What the paper (and the authors' code) use.
PAPER_INIT_LRS = {"mnist": (1e-3, 5e-3, 1e-2, 5e-2, 1e-1), "cifar10": (5e-4, 1e-3, 5e-3, 1e-2)}
PAPER_BASELINE_LR = {"mnist": 1e-1, "cifar10": 5e-3}

# The paper's scale, shared by ``paper`` and ``archive``: Algorithm 1's fresh minibatches at
# every meta step ("fresh"; "shared" draws them once per adaptation, see online_loop).
PAPER_SIZES = dict(steps=50000, adapt_every=10, meta_steps=100, meta_lr=1e-2, horizon=5,
                   batch_size=100, eval_every=100, n_train=None, n_eval_train=None, n_test=None,
                   checkpoint_every=1000, meta_batches="fresh")
# Sizes per profile and data set (see the chapter for why).
SIZES = {
    "smoke": {
        "mnist": dict(steps=40, adapt_every=10, meta_steps=2, meta_lr=5e-2, horizon=3,
                      batch_size=20, eval_every=20, n_train=400, n_eval_train=200,
                      n_test=200, init_lrs=(1e-2,), det_lrs=(), meta_batches="fresh"),
        "cifar10": dict(steps=20, adapt_every=10, meta_steps=1, meta_lr=5e-2, horizon=2,
                        batch_size=10, eval_every=10, n_train=100, n_eval_train=50,
                        n_test=50, init_lrs=(1e-3,), det_lrs=(1e-3,), meta_batches="fresh"),
    },
    "quick": {
        "mnist": dict(steps=2000, adapt_every=10, meta_steps=10, meta_lr=5e-2, horizon=5,
                      batch_size=100, eval_every=100, n_train=None, n_eval_train=2000,
                      n_test=2000, init_lrs=(1e-3, 1e-2, 1e-1), det_lrs=(1e-2,), meta_batches="fresh"),
        "cifar10": dict(steps=800, adapt_every=10, meta_steps=5, meta_lr=5e-2, horizon=5,
                        batch_size=25, eval_every=50, n_train=10000, n_eval_train=1000,
                        n_test=1000, init_lrs=(1e-3, 5e-3), det_lrs=(5e-3,), meta_batches="fresh"),
    },
    "paper": {
        "mnist": dict(PAPER_SIZES, init_lrs=PAPER_INIT_LRS["mnist"], det_lrs=PAPER_INIT_LRS["mnist"]),
        "cifar10": dict(PAPER_SIZES, init_lrs=PAPER_INIT_LRS["cifar10"],
                        det_lrs=PAPER_INIT_LRS["cifar10"]),
    },
    # MNIST at the paper's full scale on the CPU (about 87 minutes per SMD run on one shared core,
    # measured; two copies of the command share the runs), committed in ``archive/``.
    "archive": {
        "mnist": dict(PAPER_SIZES, init_lrs=PAPER_INIT_LRS["mnist"], det_lrs=PAPER_INIT_LRS["mnist"]),
    },
}
EXTRA_PROFILES = tuple(name for name in SIZES if name not in PROFILES)
ARCHIVE_DIR = "archive"
ARCHIVE_COMMAND = "python -m shortbias_lib online --profile archive --results archive"
# How long a run waits before looking again at a run that another process is computing.
POLL_SECONDS = 30


@dataclass(frozen=True)
class TrainingChoices:
    """The network and the inner optimizer: the SGD-momentum ``convention`` (``"paper"`` or the
    authors' ``"heavy_ball"``), the CNN's ``filter_size`` (the authors' code uses 5), the
    weights' ``init_std`` and the initial ``momentum`` of every run."""

    convention: str = "paper"
    filter_size: int = 3
    init_std: float = 0.1
    momentum: float = 0.9


class _DatasetSetup(NamedTuple):
    """One data set ready to train on: its sizes, its recorded configuration, the data, the
    network's ``apply`` and initial weights, and the two measures."""

    dataset: str
    sizes: dict
    config: dict
    train_set: object
    apply: Callable
    params: tuple
    eval_fn: Callable
    test_fn: Callable


def run_key(dataset, mode, lr):
    """Name of one run inside the result file, e.g. ``cifar10__deterministic__0.001``."""
    return f"{dataset}__{mode}__{lr:g}"


def checkpoint_path(profile, seed, key, folder):
    """File of one finished run in ``folder``: ``online_<profile>_seed<seed>_<key>.npz``
    (its partial checkpoint: the same with ``.partial.npz``)."""
    return Path(folder) / f"online_{profile}_seed{check_seed(seed)}_{key}.npz"


def archive_plan(dataset="mnist"):
    """The keys of the ``archive`` profile's runs, in the order they run."""
    return [run_key(dataset, mode, lr) for mode, lr in _plan(dataset, SIZES["archive"][dataset])]


def archived_runs(seed=0, dataset="mnist"):
    """The committed runs of the ``archive`` profile: ``(runs, metas, missing)``.

    Each run of the archive is its own file in ``archive/checkpoints`` with its own
    provenance (runs may be computed in different sessions or on different machines), read
    by :func:`~shortbias_lib.runs.load_result` with the arrays a run must hold; ``runs`` and
    ``metas`` map each finished run's key to its :class:`OnlineRun` and provenance,
    ``missing`` lists the keys not archived yet.
    """
    folder = REPO_ROOT / ARCHIVE_DIR / "checkpoints"
    expected = _run_expected(SIZES["archive"][dataset]["steps"])
    runs, metas, missing = {}, {}, []
    for key in archive_plan(dataset):
        path = checkpoint_path("archive", seed, key, folder)
        if not path.exists():
            missing.append(key)
            continue
        arrays, metas[key] = load_result(path, expected)
        runs[key] = OnlineRun.from_arrays(arrays)
    return runs, metas, missing


def earlier_archive_path(seed=0):
    """The first MNIST archive (2026-11): the paper's scale except 20 meta steps per adaptation
    at Adam step 5e-2, with the minibatches drawn once per adaptation (``meta_batches="shared"``)."""
    return REPO_ROOT / ARCHIVE_DIR / f"online_archive_shared20_seed{check_seed(seed)}.npz"


# The sizes the earlier archive was made with, beyond the ``archive`` profile's.
EARLIER_ARCHIVE_OVERRIDES = dict(meta_steps=20, meta_lr=5e-2, meta_batches="shared")


def runs_from_arrays(arrays, dataset=None):
    """``{key: OnlineRun}`` from the arrays of a :func:`run_online` file, in the file's order
    (only ``dataset``'s runs if given)."""
    keys = [str(k) for k in arrays["run_keys"]]
    return {k: OnlineRun.from_arrays(arrays, prefix=f"{k}__") for k in keys
            if dataset is None or k.startswith(f"{dataset}__")}


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


def _prepare(dataset, profile, device, seed, data_root, choices, overrides=None):
    """Load ``dataset``, build its network and measures, and its configuration as recorded."""
    from ... import data

    profile_sizes = pick(profile, SIZES)
    if dataset not in DATASET_MODELS:
        raise ValueError(f"dataset must be one of {', '.join(DATASET_MODELS)}; got {dataset!r}")
    if dataset not in profile_sizes:
        raise ValueError(f"dataset must be one of {', '.join(profile_sizes)} in profile "
                         f"{profile!r}; got {dataset!r}")
    cfg = dict(profile_sizes[dataset], **(overrides or {}))
    train_set = data.load(dataset, train=True, root=data_root, limit=cfg["n_train"])
    test_set = data.load(dataset, train=False, root=data_root, limit=cfg["n_test"])
    eval_x = train_set.images[:cfg["n_eval_train"]].to(device)
    eval_y = train_set.labels[:cfg["n_eval_train"]].to(device)
    test_x, test_y = test_set.images.to(device), test_set.labels.to(device)
    make, apply = _model(dataset, choices.filter_size, choices.init_std, device)
    params = make(torch.Generator().manual_seed(seed))

    def eval_fn(p):
        return models.mean_loss(apply, p, eval_x, eval_y, chunk=1000)

    def test_fn(p):
        return models.error_rate(apply, p, test_x, test_y, chunk=1000)

    config = dict(cfg, dataset=dataset, run_seed=seed, convention=choices.convention,
                  filter_size=choices.filter_size if dataset == "cifar10" else None,
                  init_std=choices.init_std, momentum=choices.momentum,
                  baseline_lr=PAPER_BASELINE_LR[dataset], final_lr=1e-4,
                  adapt_until=cfg["steps"] // 2, source=train_set.source,
                  data_fingerprint=[train_set.fingerprint, test_set.fingerprint],
                  n_train_used=len(train_set), n_test_used=len(test_set),
                  init_lrs=list(cfg["init_lrs"]), det_lrs=list(cfg["det_lrs"]))
    return _DatasetSetup(dataset, cfg, config, train_set, apply, params, eval_fn, test_fn)


def run_dataset(dataset, profile="quick", *, device="auto", seed=0, data_root=None, results=None,
                resume=True, choices=TrainingChoices(), show_progress=True, overrides=None):
    """All runs of one data set (baseline, stochastic and deterministic SMD): ``{key: OnlineRun}``.

    Each run is a file of its own (see :func:`_run_files`), reused when ``resume`` is true
    and its configuration matches. ``overrides`` replaces entries of :data:`SIZES` (for
    exploring other sizes).
    """
    seed = check_seed(seed)
    dev = resolve_device(device)
    setup = _prepare(dataset, profile, dev, seed, data_root, choices, overrides)
    found = _run_files(setup, profile, seed, dev, results, resume, show_progress)
    return {key: OnlineRun.from_arrays(result.arrays) for key, result in found.items()}


def _run_files(setup, profile, seed, device, results, resume, show_progress):
    """Run (or reuse) every run of ``setup``'s data set; ``{key: runs.Result}`` of their files.

    A run's file is ``results/checkpoints/online_<profile>_seed<seed>_<key>.npz``
    (:func:`checkpoint_path`); a run holds the file's :func:`~shortbias_lib.locks.run_lock`
    while it computes, and with ``checkpoint_every`` in its sizes saves a partial checkpoint
    beside it, from which it resumes. A run that another process is computing is passed
    over and read once that process has finished it, so two copies of the same command
    share the runs between them (one core each).
    """
    folder = results_dir(results) / "checkpoints"
    config, sizes = setup.config, setup.sizes
    expected = _run_expected(sizes["steps"])
    jobs = {}
    for mode, lr in _plan(setup.dataset, sizes):
        key = run_key(setup.dataset, mode, lr)
        path = checkpoint_path(profile, seed, key, folder)
        run_config = _run_config(config, mode, lr)
        compute = _run_computation(setup, profile, seed, device, resume, show_progress, path, run_config)
        jobs[key] = (path, run_config, compute)
    return run_shared(jobs, resume=resume, expected=expected, poll_seconds=POLL_SECONDS,
                      desc=f"online {setup.dataset}", show_progress=show_progress)


def _run_computation(setup, profile, seed, device, resume, show_progress, path, run_config):
    """``compute()`` of one run: train it (resuming from its partial checkpoint) and write its file."""
    sizes, mode, lr = setup.sizes, run_config["mode"], run_config["lr"]
    settings = OnlineSettings(mode=mode, steps=sizes["steps"], adapt_until=run_config["adapt_until"],
                              adapt_every=sizes["adapt_every"], meta_steps=sizes["meta_steps"],
                              horizon=sizes["horizon"], meta_lr=sizes["meta_lr"],
                              final_lr=run_config["final_lr"], eval_every=sizes["eval_every"],
                              convention=run_config["convention"], meta_batches=sizes["meta_batches"])

    def compute():
        partial = partial_path(path)
        if not resume:
            partial.unlink(missing_ok=True)
        batch_size = sizes["batch_size"]
        train_sampler = batches.BatchSampler.from_dataset(setup.train_set, batch_size, seed, device)
        meta_sampler = batches.BatchSampler.from_dataset(setup.train_set, batch_size, seed + 1, device)
        every = sizes.get("checkpoint_every")
        key = run_key(setup.dataset, mode, lr)
        started = provenance(profile, device, seed, **run_config)  # the commit that computes it
        run = online_run(setup.apply, setup.params, train_sampler, meta_sampler, lr, run_config["momentum"],
                         settings=settings, eval_fn=setup.eval_fn, test_fn=setup.test_fn, label=key,
                         show_progress=show_progress,
                         checkpoint=Checkpointing(partial, every, run_config, provenance=started) if every else None)
        if run.earlier_legs:
            started["earlier_legs"] = run.earlier_legs
        save_result(path, run.to_arrays(), dict(started, finished_utc=utc_now()))

    return compute


def _run_config(config, mode, lr):
    """What one run's file records and must match to be reused: the data set's configuration
    without the list of the other runs planned (so a finished run is reused whatever the plan)."""
    own = {k: v for k, v in config.items() if k not in ("init_lrs", "det_lrs")}
    return dict(own, mode=mode, lr=lr, chapter=CHAPTER)


def _plan(dataset, sizes):
    """The runs of ``dataset`` in the order they run, ``[(mode, lr)]``, from its sizes (or its
    recorded configuration, which holds them)."""
    return ([("baseline", PAPER_BASELINE_LR[dataset])] + [("stochastic", lr) for lr in sizes["init_lrs"]]
            + [("deterministic", lr) for lr in sizes["det_lrs"]])


def gathered_expected(config):
    """What a :func:`run_online` file of ``config`` must hold: every planned run's arrays under
    its key's prefix (:func:`_run_expected`) and ``run_keys``, so a file lacking one is a
    one-line error naming it (:func:`~shortbias_lib.runs.check_arrays`)."""
    expected = {}
    for dataset in config["datasets"]:
        for mode, lr in _plan(dataset, config[dataset]):
            prefix = f"{run_key(dataset, mode, lr)}__"
            expected.update({prefix + name: shape for name, shape in _run_expected(config[dataset]["steps"]).items()})
    expected["run_keys"] = (sum(len(_plan(dataset, config[dataset])) for dataset in config["datasets"]),)
    return expected


def _run_expected(steps):
    """What a finished run's file must hold (see :meth:`OnlineRun.to_arrays`)."""
    expected = {name: () for name in OnlineRun.SCALARS + ("label", "mode")}
    expected.update({name: None for name in OnlineRun.ARRAYS})
    expected.update(eff_lr=(steps,), momentum=(steps,), losses=(steps,))
    return expected


def run_online(profile="quick", *, device="auto", seed=0, data_root=None, results=None, resume=True,
               datasets=None, convention="paper", filter_size=3, show_progress=True):
    """Figures 7 and 8: online SMD on MNIST and CIFAR-10; writes ``online_<profile>_seed<seed>.npz``
    and returns its :class:`~shortbias_lib.runs.Result` (:func:`runs_from_arrays` rebuilds the runs).

    The file holds every run's arrays under the prefix ``<dataset>__<mode>__<lr>__``,
    ``run_keys`` in the order they ran, and a configuration with ``chapter`` and each data
    set's configuration; its ``device`` is where this call computed, ``run_devices`` where
    each run was computed (a run's file may be reused from another device). The paper reports
    no number for these experiments, so the file holds no ``reported_*`` arrays. A finished
    file of the same configuration is reused (:func:`~shortbias_lib.runs.run_or_resume`),
    else each run is reused or resumed from its own file (:func:`run_dataset`).
    ``datasets`` defaults to those of the profile (``archive``: MNIST only).
    """
    seed = check_seed(seed)
    sizes = pick(profile, SIZES)
    datasets = tuple(sizes) if datasets is None else tuple(datasets)
    dev = resolve_device(device)
    path = result_path("online", profile, seed, results)
    choices = TrainingChoices(convention=convention, filter_size=filter_size)
    setups = [_prepare(dataset, profile, dev, seed, data_root, choices) for dataset in datasets]
    config = {"chapter": CHAPTER, "datasets": list(datasets)}
    config.update({setup.dataset: setup.config for setup in setups})

    expected, same = gathered_expected(config), {"profile": profile, "seed": seed}
    found = load_matching(path, config, expected, same) if resume else None
    if found is not None:
        result = Result(*found)
    else:
        with run_lock(path):  # refuse at once while another run gathers this file
            pass
        per_run = {}
        for setup in setups:
            per_run.update(_run_files(setup, profile, seed, dev, results, resume, show_progress))

        def compute():
            arrays = {f"{key}__{name}": value for key, found_run in per_run.items()
                      for name, value in found_run.arrays.items()}
            arrays["run_keys"] = np.array(list(per_run))
            run_devices = {key: found_run.meta["device"] for key, found_run in per_run.items()}
            save_result(path, arrays, dict(provenance(profile, dev, seed, **config), run_devices=run_devices))

        result = run_shared({"all": (path, config, compute)}, resume=resume, expected=expected, same=same,
                            poll_seconds=POLL_SECONDS, show_progress=False)["all"]
    if sys.stdout.isatty():  # a short summary for the shell; notebooks show tables instead
        _print_summary(path, result)
    return result


def _print_summary(path, result):
    arrays, meta = result
    print(f"result file: {path}")
    for dataset in meta["config"]["datasets"]:
        print(f"{dataset} ({meta['config'][dataset]['source']}):")
        for row in plot_online.summary_rows(runs_from_arrays(arrays, dataset)):
            state = ("diverged at step %d" % row["diverged_step"]
                     if row["diverged_step"] is not None else
                     f"final training loss {row['final_train_loss']:.4g}, "
                     f"test error {row['test_error']:.2%}")
            print(f"  {row['run']:32s} settled eff. lr {row['settled_eff_lr']:.3g}, {state}")

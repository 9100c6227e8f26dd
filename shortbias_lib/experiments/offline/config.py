"""The offline experiment's settings: what every profile shares (the paper's and the
authors' code's), the sizes of each profile, and their validation."""

from ... import runs
from ...checks import check_counts, check_dtype, check_eval_chunk, check_horizons
from ...engine.warm_start import PAPER_MLP
from .design import SAMPLINGS
from ...profiles import check_profile, pick
from ...engine.training import check_convention


CHAPTER = "offline_mnist"
PAPER_HORIZONS = (100, 1000, 5000, 20000)

# Settings shared by every profile (the paper's, Section 3.2 and the authors' code).
BASE = {
    "chapter": CHAPTER,
    **PAPER_MLP,                  # the network, warm start, momentum, convention and dtype
    "log10_alpha0_range": (-3.0, -0.3),
    "log10_beta_range": (-2.0, 2.3),
    "smd_alpha0": 0.01,
    "smd_betas": (0.1, 10.0),
    "smd_clip": 10.0,
    "sampling": "uniform",        # or "halton" (quasi-random, shifted by the seed)
    "refine_per_horizon": 0,      # extra samples around each horizon's optimum (second stage)
    "refine_halfwidth": 0.15,     # their box: +- this fraction of each range around the optimum
    "bootstrap_reps": 200,
}

# Per-profile sizes. ``quick`` divides every time scale (horizons, K) by 10. ``archive``
# keeps the paper's time scale on 2 CPU cores (about 1.5 hours): fewer, better placed
# samples (quasi-random, then a refinement around each horizon's optimum run only to that
# horizon) and fewer SMD meta steps with a larger meta step size; its result is committed
# in ``archive/`` (see ``ARCHIVE_COMMAND``).
# What the two archived profiles share: the paper's time scale and objective, and an SMD
# short enough for one CPU core (600/200/30 meta steps instead of 5,000). The meta step is 0.2;
# at T = 100 and 1000 it decays geometrically from meta step 300 and 80 to SMD_FINAL_META_LR
# at the last, so that the noisy steps settle. The archives' first 300/80/30 meta steps ran
# before that annealing was added; the rest continued them (:func:`~.experiment.continued_smd`).
SMD_FINAL_META_LR = 1e-4
_PAPER_TIME_SCALE = {
    "horizons": PAPER_HORIZONS, "K": 5000.0, "train_limit": None, "test_limit": None,
    "objective_examples": 60000, "eval_chunk": 2000, "curve_every": 250,
    "smd_horizons": (100, 1000, 5000), "smd_meta_steps": (600, 200, 30), "smd_meta_lr": 0.2,
    "smd_anneal_from": (300, 80, 30), "smd_meta_lr_final": SMD_FINAL_META_LR,
    "smd_objective_examples": 10000, "smd_checkpoint_every": 5,
}

SIZES = {
    "smoke": {
        "samples": 12, "chunk": 6, "horizons": (2, 5, 10, 20), "K": 5.0,
        "train_limit": 2000, "test_limit": 500, "objective_examples": 500, "eval_chunk": 500,
        "smd_horizons": (2, 5), "smd_meta_steps": (3, 2), "smd_meta_lr": 0.1,
        "smd_checkpoint_every": 2, "curve_every": 5,
    },
    "quick": {
        "samples": 128, "chunk": 64, "horizons": (10, 100, 500, 2000), "K": 500.0,
        "train_limit": None, "test_limit": None, "objective_examples": 5000, "eval_chunk": 1000,
        "smd_horizons": (10, 100, 500), "smd_meta_steps": (80, 40, 15), "smd_meta_lr": 0.2,
        "smd_checkpoint_every": 10, "curve_every": 50,
    },
    "paper": {
        "samples": 2500, "chunk": 2500, "horizons": PAPER_HORIZONS, "K": 5000.0,  # one pass on a GPU
        "train_limit": None, "test_limit": None, "objective_examples": 60000, "eval_chunk": 2000,
        "smd_horizons": (100, 1000, 5000), "smd_meta_steps": (5000, 5000, 5000), "smd_meta_lr": 0.01,
        "smd_checkpoint_every": 100, "curve_every": 250,
    },
    "archive": {"samples": 200, "chunk": 50, **_PAPER_TIME_SCALE, "sampling": "halton", "refine_per_horizon": 40},
    # The paper's own sweep (2,500 uniform samples in one pass, about 4 minutes on an H200)
    # with the ``archive`` profile's SMD; see ``ARCHIVE_GPU_COMMANDS``.
    "archive_gpu": {"samples": 2500, "chunk": 2500, **_PAPER_TIME_SCALE},
}
EXTRA_PROFILES = ("archive", "archive_gpu")
ARCHIVE_DIR = "archive"
ARCHIVE_COMMAND = "python -m shortbias_lib offline_mnist --profile archive --results archive"
# The one command does the whole ``archive_gpu`` run on any device. Its committed file was made
# in two legs, because a lent GPU is held for minutes: the sweep and Figure 6 on the GPU
# (``stop_before_smd``), then the SMD resumed from that checkpoint on a CPU (about 35 min per
# seed on one shared core at 600/200/30 meta steps; then further legs continued its SMD).
ARCHIVE_GPU_COMMANDS = (
    "python -c \"from shortbias_lib import offline; offline.run_offline('archive_gpu', device='cuda', "
    "results='archive', stop_before_smd=True)\"",
    "python -m shortbias_lib offline_mnist --profile archive_gpu --device cpu --results archive",
)


def config_for(profile, seed=0):
    """The full configuration of a profile (what is saved with, and identifies, a result)."""
    check_profile(profile, extra=EXTRA_PROFILES)
    runs.check_seed(seed)
    config = dict(BASE)
    config.update(pick(profile, SIZES))
    config.setdefault("smd_objective_examples", config["objective_examples"])
    return check_config(config)


def with_smd_annealing(config):
    """``config`` with the SMD annealing settings it lacks (a result made before they existed):
    none, the meta learning rate staying ``smd_meta_lr`` to the last meta step."""
    return {"smd_anneal_from": config["smd_meta_steps"], "smd_meta_lr_final": config["smd_meta_lr"], **config}


def check_config(config):
    """Validate a configuration; returns it with tuples normalised."""
    config = dict(config)
    config = with_smd_annealing(config)
    for key in ("horizons", "smd_horizons", "smd_meta_steps", "smd_anneal_from", "sizes", "smd_betas",
                "log10_alpha0_range", "log10_beta_range"):
        config[key] = tuple(config[key])
    horizons = config["horizons"]
    check_horizons(horizons)
    if any(h not in horizons for h in config["smd_horizons"]):
        raise ValueError(f"smd_horizons must be among horizons {horizons}; got {config['smd_horizons']}")
    if len(config["smd_meta_steps"]) != len(config["smd_horizons"]):
        raise ValueError("smd_meta_steps must give one count per SMD horizon; "
                         f"got {config['smd_meta_steps']} for {config['smd_horizons']}")
    if len(config["smd_anneal_from"]) != len(config["smd_horizons"]) or not all(
            isinstance(a, int) and 0 <= a <= m for a, m in zip(config["smd_anneal_from"], config["smd_meta_steps"])):
        raise ValueError("smd_anneal_from must give, per SMD horizon, an integer meta step in [0, smd_meta_steps]; "
                         f"got {config['smd_anneal_from']} for {config['smd_meta_steps']} meta steps")
    if not 0 < config["smd_meta_lr_final"] <= config["smd_meta_lr"]:
        raise ValueError(f"smd_meta_lr_final must lie in (0, smd_meta_lr = {config['smd_meta_lr']!r}]; "
                         f"got {config['smd_meta_lr_final']!r}")
    check_counts(config, ("samples", "chunk", "batch_size", "objective_examples", "eval_chunk", "curve_every",
                          "bootstrap_reps"))
    check_eval_chunk(config)
    config.setdefault("smd_objective_examples", config["objective_examples"])
    if config["smd_objective_examples"] % config["eval_chunk"] or config["smd_objective_examples"] < 1:
        raise ValueError(f"smd_objective_examples must be a positive multiple of eval_chunk "
                         f"({config['eval_chunk']}); got {config['smd_objective_examples']}")
    if config["sampling"] not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}; got {config['sampling']!r}")
    check_counts(config, ("refine_per_horizon",), minimum=0)
    if not 0 < config["refine_halfwidth"] <= 0.5:
        raise ValueError(f"refine_halfwidth must lie in (0, 0.5]; got {config['refine_halfwidth']!r}")
    if not config["K"] > 0:
        raise ValueError(f"K must be > 0; got {config['K']!r}")
    for key in ("log10_alpha0_range", "log10_beta_range"):
        low, high = config[key]
        if not low < high:
            raise ValueError(f"{key} must be (low, high) with low < high; got {config[key]}")
    check_dtype(config, "dtype")
    check_convention(config["convention"])
    return config

"""The paper-time-scale design of the offline experiment: quasi-random and refined samples,
surface optima with bootstrap intervals, the claims, and the committed archive's currency."""

import math

import numpy as np
import pytest
import torch

from shortbias_lib.experiments.offline import (experiment as offline, config as offline_config,
                                               design as offline_design, smd as offline_smd,
                                               surface as offline_surface, training as offline_training)
from shortbias_lib import report, runs
from shortbias_lib.engine import warm_start
from shortbias_lib.engine.batches import derived_seed
from shortbias_lib.engine.models import mean_loss, mlp_apply
from shortbias_lib.engine.batches import StepBatches
from shortbias_lib.engine.schedules import InverseTime
from shortbias_lib.engine.training import train

from test_offline import Interrupt, _run, _tiny_config


def test_halton_points_are_even_and_the_seed_only_shifts_them():
    points = offline_design.halton(256, seed=0)
    assert points.shape == (256, 2) and points.min() >= 0 and points.max() < 1
    for d in range(2):  # 256 points in 16 bins: within +-2 of 16 (independent draws: +-4 typical)
        counts = np.histogram(points[:, d], bins=16, range=(0, 1))[0]
        assert counts.min() >= 14 and counts.max() <= 18
    other = offline_design.halton(256, seed=1)
    gaps = (other - points) % 1.0
    np.testing.assert_allclose(gaps, np.broadcast_to(gaps[0], gaps.shape), atol=1e-12)  # one shift
    assert not np.allclose(gaps[0], 0.0)
    np.testing.assert_array_equal(offline_design.halton(256, seed=0), points)


def test_halton_samples_cover_the_authors_ranges():
    a, b = offline_design.sample_hyperparameters(200, 0, sampling="halton")
    assert a.min() >= -3 and a.max() <= -0.3 and b.min() >= -2 and b.max() <= 2.3
    assert abs(a.mean() + 1.65) < 0.03 and abs(b.mean() - 0.15) < 0.05
    with pytest.raises(ValueError, match="sampling"):
        offline_design.sample_hyperparameters(10, 0, sampling="sobol")


def test_refinement_box_is_centred_and_moved_inside_the_ranges():
    ranges = ((-3.0, -0.3), (-2.0, 2.3))
    a, b = offline_design.refinement_samples(50, 0, 1, (-1.0, 0.5), 0.1, *ranges)
    assert np.all(np.abs(a + 1.0) <= 0.27 + 1e-12) and np.all(np.abs(b - 0.5) <= 0.43 + 1e-12)
    a, b = offline_design.refinement_samples(50, 0, 1, (-0.3, 2.3), 0.1, *ranges)   # a corner
    assert a.max() <= -0.3 and b.max() <= 2.3 and a.min() >= -0.3 - 0.54 - 1e-12


def test_weighted_smoothing_equals_smoothing_the_resample():
    """A bootstrap resample as multiplicities gives the surface of the duplicated samples."""
    rng = np.random.default_rng(1)
    x, y, z = rng.uniform(0, 1, 30), rng.uniform(-1, 1, 30), rng.normal(size=30)
    index = rng.integers(0, 30, 30)
    counts = np.bincount(index, minlength=30)
    _, _, weighted = offline_surface.smooth_surface(x, y, z, (0, 1), (-1, 1), grid=9, bandwidth=0.2, weights=counts)
    _, _, duplicated = offline_surface.smooth_surface(x[index], y[index], z[index], (0, 1), (-1, 1), grid=9,
                                              bandwidth=0.2)
    np.testing.assert_allclose(weighted, duplicated, rtol=1e-12)


def _quadratic_result(n=400, optimum=(-1.2, 0.8), noise=0.0, seed=0):
    """Synthetic result arrays whose log10 loss is a bowl around ``optimum`` at every horizon."""
    rng = np.random.default_rng(seed)
    a, b = offline_design.sample_hyperparameters(n, seed, sampling="halton")
    log_loss = 0.5 * ((a - optimum[0]) / 0.5) ** 2 + 0.5 * ((b - optimum[1]) / 1.0) ** 2 - 1.0
    values = 10.0 ** (log_loss + noise * rng.normal(size=n))
    config = {"horizons": (10, 20), "log10_alpha0_range": (-3.0, -0.3), "log10_beta_range": (-2.0, 2.3)}
    arrays = {"log10_alpha0": a, "log10_beta": b, "objective": np.stack([values, values], axis=1),
              "warm_objective": np.asarray(1e6)}
    return arrays, config


def test_surface_optimum_finds_a_known_minimum_and_the_bootstrap_brackets_it():
    arrays, config = _quadratic_result(noise=0.1)
    optima, _ = offline_surface.surface_optima(arrays, config)
    # Smoothing a symmetric bowl keeps its minimum; the grid spacing is 0.034 and 0.054 decades.
    np.testing.assert_allclose(optima[0], [-1.2, 0.8], atol=0.12)
    boot, _ = offline_surface.bootstrap_optima(arrays, config, reps=40, seed=0)
    low, high = np.percentile(boot[:, 0], [2.5, 97.5], axis=0)
    assert np.all(low <= [-1.2, 0.8] + np.array([0.05, 0.1])) and np.all(high >= [-1.2, 0.8] - np.array([0.05, 0.1]))
    again, _ = offline_surface.bootstrap_optima(arrays, config, reps=40, seed=0)
    np.testing.assert_array_equal(again, boot)


def test_claims_are_ratios_of_the_surface_optima_and_the_trained_losses():
    arrays = {"surface_log10": np.array([[-1.0, 1.5], [-1.2, -0.5]]),
              "bootstrap_log10": np.array([[[-1.0, 1.4], [-1.2, -0.4]], [[-1.0, 1.6], [-1.2, -0.6]]]),
              "surface_curve_train_loss": np.array([[0.5, 0.2], [0.4, 0.002]]),
              "surface_log_loss": np.array([-0.5, -2.5]),
              "bootstrap_log_loss": np.array([[-0.4, -2.4], [-0.6, -2.6]])}
    found = offline_surface.claims(arrays)
    assert found["beta_ratio"] == pytest.approx(100.0)
    low, high = 10.0 ** 1.8, 10.0 ** 2.2   # the two resamples' ratios, interpolated percentiles
    np.testing.assert_allclose(found["beta_ratio_interval"], [low + 0.025 * (high - low), high - 0.025 * (high - low)])
    assert found["loss_ratio"] == pytest.approx(100.0)           # smoothed: 10^(-0.5 - -2.5)
    assert found["trained_loss_ratio"] == pytest.approx(100.0)   # 0.2 / 0.002


def test_a_claim_holds_only_if_its_whole_interval_is_above_the_bound():
    def claim(ours, low, high):
        return report.Comparison("c", "q", ours, 100.0, "f", "lower_bound", low, high)

    assert claim(300.0, 150.0, 600.0).agreement == "claim holds"
    assert claim(300.0, 50.0, 600.0).agreement.startswith("undecided")
    assert claim(30.0, 5.0, 90.0).agreement == "claim not met"
    assert claim(300.0, math.nan, math.nan).agreement == "claim holds"   # no interval: the value
    assert "[150, 600]" in claim(300.0, 150.0, 600.0).ours_text


def test_refinement_samples_are_trained_to_their_horizon_only(tmp_path):
    config = _tiny_config(sampling="halton", refine_per_horizon=2)
    arrays, _ = _run(tmp_path / "run.npz", config)
    S, H = config["samples"], len(config["horizons"])
    assert len(arrays["log10_alpha0"]) == S + 2 * H
    for k, T in enumerate(config["horizons"]):
        rows = slice(S + 2 * k, S + 2 * k + 2)
        assert np.all(arrays["run_steps"][rows] == T)
        assert np.all(np.isfinite(arrays["objective"][rows, :k + 1]))
        assert np.all(np.isnan(arrays["objective"][rows, k + 1:]))
    # Independent computation of one refinement sample: a plain training run of T steps.
    from test_offline import _data
    images, labels = _data(120, 0)
    s, k = S + 2 * 1, 1
    warm = warm_start.warm_state(arrays)
    batches = StepBatches(images, labels, config["batch_size"], derived_seed(0, 2))
    run = train(mlp_apply, warm, batches, config["horizons"][k],
                InverseTime(10.0 ** arrays["log10_alpha0"][s], 10.0 ** arrays["log10_beta"][s], config["K"]))
    expected = mean_loss(mlp_apply, run.state.params, images[:60], labels[:60])
    assert arrays["objective"][s, k] == pytest.approx(expected, rel=1e-10)
    assert arrays["surface_log10"].shape == (H, 2)
    assert arrays["bootstrap_log10"].shape == (config["bootstrap_reps"], H, 2)


def test_an_interrupted_refinement_resumes_to_the_uninterrupted_result(tmp_path):
    config = _tiny_config(sampling="halton", refine_per_horizon=2, bootstrap_reps=5)
    reference, _ = _run(tmp_path / "reference.npz", config)

    def stop(stage):
        if stage == "refinement 2/3":
            raise Interrupt(stage)

    path = tmp_path / "resumed.npz"
    with pytest.raises(Interrupt):
        _run(path, config, stop)
    stages = []
    arrays, _ = _run(path, config, stages.append)
    assert stages[0] == "refinement 3/3"
    for name in reference:
        np.testing.assert_array_equal(arrays[name], reference[name], err_msg=name)


def test_figure6_trains_the_surface_optima(tmp_path):
    arrays, meta = _run(tmp_path / "run.npz", _tiny_config(bootstrap_reps=5))
    config = meta["config"]
    from test_offline import _data
    images, labels = _data(120, 0)
    warm = warm_start.warm_state(arrays)
    batches = StepBatches(images, labels, config["batch_size"], derived_seed(0, 2))
    k, T = 0, max(config["horizons"])
    log_a, log_b = arrays["surface_log10"][k]
    run = train(mlp_apply, warm, batches, T, InverseTime(10.0 ** log_a, 10.0 ** log_b, config["K"]))
    expected = mean_loss(mlp_apply, run.state.params, images[:60], labels[:60])
    assert arrays["surface_curve_train_loss"][k, -1] == pytest.approx(expected, rel=1e-9)


def test_only_the_offline_experiment_has_the_archive_profile():
    assert offline_config.config_for("archive")["horizons"] == offline_config.PAPER_HORIZONS
    assert offline_config.config_for("archive")["K"] == 5000.0
    from shortbias_lib.experiments import figure3 as noisy_quadratic
    with pytest.raises(ValueError, match="profile must be one of smoke, quick, paper; got 'archive'"):
        noisy_quadratic.run_figure3("archive")


def _mnist_train(data_root):
    from shortbias_lib.data import load

    train_set = load("mnist", train=True, root=data_root)
    return train_set.images.to(torch.float32), train_set.labels


def _assert_warm_start_recomputed(arrays, config, seed, images, labels, atol):
    """The warm start redone from its seed matches the archived one to ``atol``."""
    warm = warm_start.seeded_warm_start(config, seed, images, labels)
    for i, (p, v) in enumerate(zip(warm.params, warm.velocity)):
        np.testing.assert_allclose(p.numpy(), arrays[f"warm_params_{i}"], rtol=0, atol=atol)
        np.testing.assert_allclose(v.numpy(), arrays[f"warm_velocity_{i}"], rtol=0, atol=atol)
    return warm


def _median_schedule_objectives(arrays, config, seed, warm, images, labels, rows):
    """The schedule with the median loss at the 1,000-step horizon (among ``rows``), trained
    again one at a time from ``warm``: its objectives at the first two horizons."""
    k = 1
    finite = rows[np.isfinite(arrays["objective"][rows, k])]
    s = finite[np.argsort(arrays["objective"][finite, k])[len(finite) // 2]]
    n = config["objective_examples"]
    values, bad = offline_training.horizon_objectives(
        warm, torch.as_tensor(10.0 ** arrays["log10_alpha0"][s:s + 1]),
        torch.as_tensor(10.0 ** arrays["log10_beta"][s:s + 1]), config["K"], tuple(config["horizons"][:k + 1]),
        StepBatches(images, labels, config["batch_size"], derived_seed(seed, 2)),
        (images[:n], labels[:n]), eval_chunk=config["eval_chunk"])
    assert bad[0] == -1
    return values[0], arrays["objective"][s, :k + 1]


def _smd_start(warm, config, seed, j, meta_steps, images, labels):
    """The first ``meta_steps`` of SMD run ``j`` of a result, redone from ``warm``."""
    chunk, n = config["eval_chunk"], config["smd_objective_examples"]
    objective = [(images[i:i + chunk], labels[i:i + chunk]) for i in range(0, n, chunk)]
    horizon, beta0 = [(h, b) for h in config["smd_horizons"] for b in config["smd_betas"]][j]
    return offline_smd.smd_trajectory(
        warm, offline_smd.smd_hyperparameters(config["smd_alpha0"], beta0, config["K"], config["momentum"]),
        horizon, meta_steps,
        StepBatches(images, labels, config["batch_size"], derived_seed(seed, 4, j)),
        objective, meta_lr=offline_smd.smd_meta_lr(config, horizon), clip=config["smd_clip"],
        convention=config["convention"])


def test_the_archived_run_is_current_with_the_code(data_root):
    """The committed paper-time-scale result, recomputed in part with today's code.

    The warm start is redone from its seed, and one archived schedule is trained again
    for the first horizons (100 and 1,000 steps) on the same minibatches; both must
    match the archive. A change in the numerics fails here until the archive is
    regenerated with ``offline_config.ARCHIVE_COMMAND``.
    """
    from shortbias_lib.runs import REPO_ROOT

    arrays, meta = offline.load_offline(offline.archive_path())
    assert meta["profile"] == "archive" and meta["stage"] == "finished"
    assert meta["config"] == runs.json_ready(offline_config.config_for("archive")), \
        f"the archive was made with other settings: regenerate it with `{offline_config.ARCHIVE_COMMAND}`"
    assert (REPO_ROOT / offline_config.ARCHIVE_DIR).is_dir()
    config, seed = meta["config"], meta["seed"]
    images, labels = _mnist_train(data_root)
    warm = _assert_warm_start_recomputed(arrays, config, seed, images, labels, atol=1e-6)
    # A first-stage schedule that trains well at the short horizons (the median of them).
    values, archived = _median_schedule_objectives(arrays, config, seed, warm, images, labels,
                                                   np.arange(config["samples"]))
    # The archive trained 50 schedules at once (vmapped float32); one at a time rounds
    # differently, and training amplifies that: measured 1e-7 after 100 steps and 2.3e-4
    # after 1,000. Any change of the numerics moves these values by percents.
    np.testing.assert_allclose(values[0], archived[0], rtol=1e-5)
    np.testing.assert_allclose(values[1], archived[1], rtol=2e-3)


def test_the_archived_smd_is_current_with_the_code(data_root):
    """The archive's SMD trajectories, recomputed at their start with today's hypergradients.

    Three meta steps of the first T = 100 trajectory and one of the first T = 1,000 one,
    from the same warm start and minibatches. The archive's SMD ran before the tangents
    were batched into one Hessian-vector product; the two round differently (measured:
    1e-6 relative on the hypergradient at T = 100, 4e-3 at T = 1,000, where training
    amplifies roundoff), while any change of the algorithm moves them by percents.
    """
    arrays, meta = offline.load_offline(offline.archive_path())
    config, seed = meta["config"], meta["seed"]
    images, labels = _mnist_train(data_root)
    warm = warm_start.seeded_warm_start(config, seed, images, labels)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for (j, meta_steps, rtol) in ((0, 3, 1e-4), (2, 1, 2e-2)):
            fresh = _smd_start(warm, config, seed, j, meta_steps, images, labels)
            np.testing.assert_allclose(fresh["hypergrad"], arrays[f"smd_{j}_hypergrad"][:meta_steps],
                                       rtol=rtol)
            np.testing.assert_allclose(fresh["meta_loss"], arrays[f"smd_{j}_meta_loss"][:meta_steps],
                                       rtol=rtol / 10)
            np.testing.assert_allclose(fresh["u"], arrays[f"smd_{j}_u"][:meta_steps + 1], rtol=1e-6)
    finally:
        torch.set_num_threads(threads)


def test_a_result_from_other_data_is_not_reused(tmp_path):
    from test_offline import _data

    config = _tiny_config(bootstrap_reps=5)
    path = tmp_path / "run.npz"

    def run(fingerprint, calls):
        return offline.run_experiment(config, _data(120, 0), _data(40, 1), path, profile="smoke",
                                      on_checkpoint=calls.append, show_progress=False,
                                      data_fingerprint=fingerprint)

    first, meta = run(["train-a", "test-a"], [])
    assert meta["data_fingerprint"] == ["train-a", "test-a"]
    same = []
    run(["train-a", "test-a"], same)
    assert same == []                                   # same data: reused
    other = []
    run(["train-b", "test-a"], other)
    assert other                                         # other data: recomputed
    unknown = []
    run(None, unknown)                                   # no fingerprint to compare: reused
    assert unknown == []


@pytest.mark.parametrize("seed", [0, 1])
def test_the_gpu_archived_runs_are_current_with_the_code(data_root, seed):
    """The paper's design (``archive_gpu``: sweep and Figure 6 on a GPU, SMD on a CPU),
    recomputed in part on this CPU with today's code.

    The warm start is redone from its seed; one archived schedule is trained again from the
    archived warm start for 100 and 1,000 steps; the first three SMD meta steps at T = 100
    are redone. GPU and CPU round differently (measured for seed 0: 3e-7 on the warm
    start's weights, 1e-7 relative after 100 steps, 1.2e-4 after 1,000), while a change of
    the numerics moves these values by percents. Regenerate with ``offline_config.ARCHIVE_GPU_COMMANDS``.
    """
    arrays, meta = offline.load_offline(offline.archive_path(seed, profile="archive_gpu"))
    assert (meta["profile"], meta["seed"], meta["stage"]) == ("archive_gpu", seed, "finished")
    assert meta["config"] == runs.json_ready(offline_config.config_for("archive_gpu", seed))
    # The GPU leg, the CPU leg that finished it, and the CPU legs that continued its SMD.
    assert [leg["stage"] for leg in meta["earlier_legs"]] == ["figure 6 curves", "SMD 300/80/30 meta steps",
                                                              "SMD 600/80/30 meta steps"]
    assert meta["earlier_legs"][0]["device"].startswith("cuda") and meta["device"] == "cpu"
    config = meta["config"]
    images, labels = _mnist_train(data_root)
    _assert_warm_start_recomputed(arrays, config, seed, images, labels, atol=2e-6)
    warm = warm_start.warm_state(arrays)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        values, archived = _median_schedule_objectives(arrays, config, seed, warm, images, labels,
                                                       np.arange(len(arrays["log10_alpha0"])))
        np.testing.assert_allclose(values[0], archived[0], rtol=1e-5)
        np.testing.assert_allclose(values[1], archived[1], rtol=2e-3)
        # The SMD leg ran on a CPU from the archived (GPU) warm start: its start is redone exactly.
        j, meta_steps = 0, 3
        fresh = _smd_start(warm, config, seed, j, meta_steps, images, labels)
        np.testing.assert_allclose(fresh["hypergrad"], arrays[f"smd_{j}_hypergrad"][:meta_steps], rtol=1e-4)
        np.testing.assert_allclose(fresh["meta_loss"], arrays[f"smd_{j}_meta_loss"][:meta_steps], rtol=1e-5)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_gpu_archives_record_the_hand_correction_of_their_commit(seed):
    """The GPU leg's commit was corrected by hand (bench/README.md); the file's provenance says so."""
    _, meta = runs.load_result(offline.archive_path(seed, profile="archive_gpu"))
    (note,) = meta["provenance_corrections"]
    assert note["field"] == "earlier_legs[0].git_commit" and note["recorded"].endswith("-dirty")
    assert note["corrected_to"] == meta["earlier_legs"][0]["git_commit"] != note["recorded"]
    assert note["why"] and note["when"]


def test_results_of_several_profiles_are_collected_with_the_file_and_each_device_named(tmp_path):
    def save(name, profile, ours, **meta):
        arrays = {"reported_names": np.array(["ratio"]), "reported_ours": np.array([ours]),
                  "reported_paper": np.array([100.0]), "reported_kinds": np.array(["lower_bound"])}
        runs.save_result(tmp_path / name, arrays, {"profile": profile, "config": {"chapter": "c"}, **meta})

    save("a.npz", "archive", 300.0, device="cpu")
    save("b.npz", "archive_gpu", 50.0, device="cpu",
         earlier_legs=[{"device": "cuda (H200)", "stage": "figure 6 curves", "time_utc": "t0"}])
    save("c.npz", "quick", 1.0, device="cpu")
    found = report.collect(tmp_path, ("archive_gpu", "archive"))
    assert [(c.source, c.verdict) for c in found] == [("a.npz", "holds"), ("b.npz", "not met")]
    assert [c.source for c in report.collect(tmp_path, "archive")] == ["a.npz"]
    table = report.comparison_table(found).data
    assert "| `a.npz` |" in table and "| `b.npz` |" in table   # several files: each row names its own
    assert "| `a.npz` |" not in report.comparison_table(found[:1]).data
    provenance = report.provenance_table(tmp_path, ("archive_gpu", "archive")).data
    assert "cuda (H200) up to figure 6 curves, then cpu" in provenance and "c.npz" not in provenance
    assert "| t0 |" in provenance   # the time its first leg started


def test_archive_paths_name_an_archived_profile():
    assert offline.archive_path(1, "archive_gpu").name == "offline_mnist_archive_gpu_seed1.npz"
    with pytest.raises(ValueError, match="profile must be one of"):
        offline.archive_path(0, "quick")


def _two_bowls(n=900, noise=0.05, seed=0):
    """Synthetic result: horizon 10's log10 loss is a bowl at log10 beta = 1.5, horizon 20's at
    -0.5 (same alpha_0): a beta ratio of 100, and horizon 20's loss at horizon 10's optimum is
    0.5 * 2**2 = 2 decades above its minimum (a loss ratio of 100)."""
    rng = np.random.default_rng(seed)
    a, b = offline_design.sample_hyperparameters(n, seed, sampling="halton")
    bowls = [0.5 * ((a + 1.2) / 0.5) ** 2 + 0.5 * (b - centre) ** 2 - 1.0 for centre in (1.5, -0.5)]
    values = np.stack([10.0 ** (bowl + noise * rng.normal(size=n)) for bowl in bowls], axis=1)
    config = {"horizons": (10, 20), "log10_alpha0_range": (-3.0, -0.3), "log10_beta_range": (-2.0, 2.3)}
    return {"log10_alpha0": a, "log10_beta": b, "objective": values, "warm_objective": np.asarray(1e6)}, config


def test_the_vectorised_bootstrap_equals_one_smoothing_per_resample():
    """Independent reference: the same resamples (same generator), each smoothed on its own."""
    arrays, config = _two_bowls(n=200)
    optima, log_loss = offline_surface.bootstrap_optima(arrays, config, reps=7, seed=3, grid=30, chunk=3)
    rng = np.random.default_rng(derived_seed(3, 7))
    for r in range(7):
        counts = np.bincount(rng.integers(0, 200, 200), minlength=200).astype(float)
        o, at = offline_surface.surface_optima(arrays, config, grid=30, weights=counts)
        np.testing.assert_array_equal(optima[r], o)
        np.testing.assert_allclose(log_loss[r], at, rtol=1e-12)


def test_claim_bands_find_the_known_ratios_under_every_choice():
    arrays, config = _two_bowls()
    arrays["surface_curve_train_loss"] = np.array([[1.0, 0.5], [1.0, 0.005]])   # trained: 100
    bands = offline_surface.claim_bands(arrays, config, seed=0, reps=50, k=5, grid=60)
    for band in bands.values():
        assert band.reps == 50 and band.bound == offline_surface.CLAIM_BOUNDS[band.name]
        # Every estimate within 0.35 decade of the known 100 (grid 0.07 decade, noise 0.05 decade;
        # smoothing lifts the bowl's bottom, so the loss ratio comes out lower, measured 72).
        assert all(abs(math.log10(v) - 2.0) < 0.35 for v in band.values()), band
        assert band.bootstrap[0] <= band.bootstrap[1] and band.bandwidth[0] <= band.value <= band.bandwidth[1]
    assert set(bands["loss_ratio"].estimators) == {"trained optima", "best sample", "mean of 5 best"}
    assert bands["loss_ratio"].estimators["trained optima"] == pytest.approx(100.0)


def test_the_band_verdict_counts_the_numbers_above_the_bound():
    def band(*values):
        return offline_surface.ClaimBand("beta_ratio", 100.0, values[0], values[1:3], 10, values[3:5], (0.5, 2.0),
                                         {"best sample": values[5]})

    assert offline_surface.band_verdict([band(300, 200, 400, 250, 350, 500)])[0] == "holds across the whole band"
    verdict, clearing, total, low, high = offline_surface.band_verdict(
        [band(300, 200, 400, 250, 350, 500), band(150, 60, 300, 90, 200, 120)])
    assert (clearing, total, low, high) == (10, 12, 60.0, 500.0) and verdict.startswith("holds for 10 of")
    assert offline_surface.band_verdict([band(50, 20, 90, 30, 60, 80)])[0] == "not met anywhere in the band"


def _smd_run(log10_alpha0, log10_beta, meta_loss, hypergrad=None):
    hypergrad = np.zeros((len(meta_loss), 2)) if hypergrad is None else hypergrad
    return {"horizon": 100, "beta0": 1.0, "log10_alpha0": np.asarray(log10_alpha0, dtype=float),
            "log10_beta": np.asarray(log10_beta, dtype=float), "meta_loss": np.asarray(meta_loss, dtype=float),
            "hypergrad": hypergrad}


SMD_CONFIG = {"sizes": [784, 100, 100, 10], "K": 5000.0, "momentum": 0.9}


def test_smd_states_converged_still_moving_and_collapsed():
    rng = np.random.default_rng(0)
    m = 30
    flat = _smd_run(-1.0 + 0.01 * rng.normal(size=m + 1), 0.5 + 0.01 * rng.normal(size=m + 1), np.full(m, 0.1))
    assert offline_smd.smd_state(flat, SMD_CONFIG).state == "converged"
    # 0.02 decade a step: 0.2 decade over the last third (10 steps), above the 0.1 tolerance.
    trend = _smd_run(np.full(m + 1, -1.0), 0.5 + 0.02 * np.arange(m + 1), np.full(m, 0.1))
    state = offline_smd.smd_state(trend, SMD_CONFIG)
    assert state.state == "still moving" and state.drift[1] == pytest.approx(0.2) and state.window == 10
    # A spike, then the loss of a constant output (ln 10) to the end.
    loss = np.where(np.arange(m) >= 20, math.log(10) + 0.01, 0.1)
    grads = np.zeros((m, 2))
    grads[19] = (-3e4, 5.0)
    state = offline_smd.smd_state(_smd_run(np.full(m + 1, -1.0), np.full(m + 1, 0.5), loss, grads), SMD_CONFIG)
    assert (state.state, state.since, state.largest_at, state.largest_hypergrad) == ("collapsed", 20, 19, -3e4)
    # One lucky lookahead inside the collapse does not end it; two in a row do.
    for lucky, since in (([25], 20), ([24, 25], 26)):
        spiky = loss.copy()
        spiky[lucky] = 1.5
        state = offline_smd.smd_state(_smd_run(np.full(m + 1, -1.0), np.full(m + 1, 0.5), spiky), SMD_CONFIG)
        assert (state.state, state.since) == ("collapsed", since)
    # Recovered from the untrained level: not a collapse.
    recovered = np.where((np.arange(m) >= 10) & (np.arange(m) < 20), math.log(10), 0.1)
    assert offline_smd.smd_state(_smd_run(np.full(m + 1, -1.0), np.full(m + 1, 0.5), recovered),
                                 SMD_CONFIG).state == "converged"
    # alpha_0 at its upper bound (alpha_0 / (1 - mu) = 10, so alpha_0 = 1) for the last 12 meta steps.
    pinned = np.where(np.arange(m + 1) >= m + 1 - 12, 0.0, -1.0)
    state = offline_smd.smd_state(_smd_run(pinned, np.full(m + 1, 0.5), np.full(m, 0.1)), SMD_CONFIG)
    assert state.state == "collapsed" and state.since == m + 1 - 12 and "alpha_0 pinned" in state.reason

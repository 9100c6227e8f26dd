"""Offline experiment (Section 3.2): the one-run-all-horizons shortcut, resuming, smoothing."""

import numpy as np
import pytest
import torch

from shortbias_lib.experiments.offline import (experiment as offline, config as offline_config,
                                               design as offline_design, smd as offline_smd,
                                               surface as offline_surface, training as offline_training)
from shortbias_lib import runs
from shortbias_lib.engine.models import mean_loss, mlp_apply, mlp_init
from shortbias_lib.engine.batches import StepBatches
from shortbias_lib.engine.meta_optim import Adam, adam_update
from shortbias_lib.engine.schedules import InverseTime
from shortbias_lib.engine.training import train
from shortbias_lib.engine.warm_start import warm_start

SIZES = (20, 8, 3)


def _data(n=120, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, SIZES[0], generator=generator, dtype=dtype)
    labels = torch.randint(0, SIZES[-1], (n,), generator=generator)
    return images, labels


def _tiny_config(**changes):
    config = dict(offline_config.BASE)
    config.update({
        "sizes": SIZES, "init_std": 0.3, "batch_size": 10, "warm_steps": 3, "dtype": "float64",
        "samples": 6, "chunk": 2, "horizons": (2, 4, 8), "K": 4.0,
        "train_limit": None, "test_limit": None, "objective_examples": 60, "eval_chunk": 30,
        "smd_horizons": (2, 4), "smd_meta_steps": (3, 2), "smd_meta_lr": 0.1,
        "smd_checkpoint_every": 1, "curve_every": 2,
    })
    config.update(changes)
    return offline_config.check_config(config)


def test_one_run_gives_the_same_objective_as_separate_runs_of_each_horizon():
    images, labels = _data()
    params = mlp_init(torch.Generator().manual_seed(1), SIZES, 0.3, torch.float64)
    warm = warm_start(params, StepBatches(images, labels, 10, 5), steps=3)
    batches = StepBatches(images, labels, 10, 7)
    objective = (images[:60], labels[:60])
    alpha0 = torch.tensor([0.01, 0.05, 0.2, 0.5], dtype=torch.float64)
    beta = torch.tensor([0.02, 1.0, 5.0, 50.0], dtype=torch.float64)
    horizons = (3, 7, 12)
    values, bad = offline_training.horizon_objectives(warm, alpha0, beta, 4.0, horizons, batches, objective,
                                             eval_chunk=30)
    assert values.shape == (4, 3) and np.all(bad == -1)
    # Independent computation: one plain (unbatched) training run per schedule AND per horizon.
    for s in range(4):
        for k, T in enumerate(horizons):
            run = train(mlp_apply, warm.clone(), batches, T,
                        InverseTime(float(alpha0[s]), float(beta[s]), 4.0), momentum=0.9)
            expected = mean_loss(mlp_apply, run.state.params, *objective)
            assert values[s, k] == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_step_batches_are_random_access_and_epochs_are_permutations():
    images, labels = _data(50)
    batches = StepBatches(images, labels, 10, seed=3)
    sequential = [batches.indices(t).clone() for t in range(12)]
    again = StepBatches(images, labels, 10, seed=3)
    for t in (11, 0, 7, 5):
        assert torch.equal(again.indices(t), sequential[t])
    epoch = torch.cat(sequential[:5])
    assert sorted(epoch.tolist()) == list(range(50))
    assert not torch.equal(torch.cat(sequential[5:10]), epoch)


class Interrupt(Exception):
    pass


def _run(path, config, on_checkpoint=None, **options):
    train_data, test_data = _data(120, 0), _data(40, 1)
    return offline.run_experiment(config, train_data, test_data, path, profile="smoke", seed=0,
                                  on_checkpoint=on_checkpoint, show_progress=False, **options)


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    config = _tiny_config()
    reference, _ = _run(tmp_path / "reference.npz", config)
    path = tmp_path / "resumed.npz"
    for stop_at in ("samples 4/6", "SMD T=2 beta0=10: 2 meta steps", "SMD T=4 beta0=0.1: 1 meta steps"):
        def stop(stage, stop_at=stop_at):
            if stage == stop_at:
                raise Interrupt(stage)
        with pytest.raises(Interrupt):
            _run(path, config, stop)
        assert path.with_suffix(".partial.npz").exists() and not path.exists()
    stages = []
    arrays, meta = _run(path, config, stages.append)
    assert stages[0] == "SMD T=4 beta0=0.1: 2 meta steps"       # nothing finished was redone
    assert path.exists() and not path.with_suffix(".partial.npz").exists()
    assert sorted(arrays) == sorted(reference)
    for name in reference:
        if reference[name].dtype.kind in "fc":
            np.testing.assert_array_equal(arrays[name], reference[name], err_msg=name)
        else:
            assert np.array_equal(arrays[name], reference[name]), name
    assert meta["config"]["samples"] == 6


def test_a_run_stopped_before_smd_is_finished_by_a_second_leg_with_both_recorded(tmp_path):
    config = _tiny_config()
    reference, _ = _run(tmp_path / "reference.npz", config)
    path = tmp_path / "two_legs.npz"
    first, meta = leg = _run(path, config, stop_before_smd=True)
    assert isinstance(leg, runs.Result)                     # the contract, even for a first leg
    assert meta["stage"] == "figure 6 curves" and not any(name.startswith("smd_") for name in first)
    assert path.with_suffix(".partial.npz").exists() and not path.exists()
    arrays, meta = _run(path, config)
    assert path.exists() and not path.with_suffix(".partial.npz").exists()
    assert [leg["stage"] for leg in meta["earlier_legs"]] == ["figure 6 curves"]
    assert meta["earlier_legs"][0]["device"] == "cpu" and meta["stage"] == "finished"
    for name in reference:
        np.testing.assert_array_equal(arrays[name], reference[name], err_msg=name)


def test_a_finished_file_is_reused_and_a_different_configuration_recomputed(tmp_path):
    path = tmp_path / "run.npz"
    first, meta = result = _run(path, _tiny_config())
    assert isinstance(result, runs.Result) and meta["stage"] == "finished"
    calls = []
    again, _ = _run(path, _tiny_config(), calls.append)
    assert calls == []
    np.testing.assert_array_equal(again["objective"], first["objective"])
    other, _ = _run(path, _tiny_config(samples=4), calls.append)
    assert calls and other["objective"].shape == (4, 3)


def test_a_longer_annealed_smd_continues_a_finished_file_to_the_one_go_result(tmp_path):
    longer = _tiny_config(smd_meta_steps=(6, 5), smd_anneal_from=(3, 2), smd_meta_lr_final=0.01)
    reference, _ = _run(tmp_path / "reference.npz", longer)
    path = tmp_path / "continued.npz"
    _run(path, _tiny_config())                            # constant meta learning rate, (3, 2) meta steps
    stages = []
    arrays, meta = _run(path, longer, stages.append)
    assert stages[0] == "SMD T=2 beta0=0.1: 4 meta steps"   # no earlier stage redone
    assert meta["config"] == runs.json_ready(longer) and meta["stage"] == "finished"
    assert [leg["stage"] for leg in meta["earlier_legs"]] == ["SMD 3/2 meta steps"]
    assert sorted(arrays) == sorted(reference)
    for name in reference:
        np.testing.assert_array_equal(arrays[name], reference[name], err_msg=name)


@pytest.mark.parametrize("changes", [{"samples": 4}, {"smd_meta_lr": 0.05},
                                     {"smd_meta_steps": (6, 5), "smd_anneal_from": (1, 2), "smd_meta_lr_final": 0.01}])
def test_a_finished_file_is_not_continued_when_more_than_smd_length_changes(tmp_path, changes):
    """Another sweep, another meta step size, or annealing that starts inside the finished
    meta steps (so they would have run otherwise): recomputed from the start."""
    path = tmp_path / "run.npz"
    _run(path, _tiny_config())
    stages = []
    _run(path, _tiny_config(**changes), stages.append)
    assert stages[0] == "warm start"


def test_the_meta_learning_rate_is_constant_then_decays_geometrically_to_its_final_value():
    config = _tiny_config(smd_meta_steps=(7, 2), smd_anneal_from=(3, 2), smd_meta_lr_final=0.001)
    rate = offline_smd.smd_meta_lr(config, 2)
    rates = np.array([rate(m) for m in range(7)])
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.1, 0.1, 0.1 * 0.01 ** (1 / 3), 0.1 * 0.01 ** (2 / 3), 0.001])
    assert offline_smd.smd_meta_lr(config, 4) == 0.1        # nothing left to anneal: constant
    # Adam with the schedule takes Adam's steps at each meta step's rate, also once resumed.
    grads = np.random.default_rng(0).normal(size=(7, 2))
    scheduled, u = Adam(rate), np.zeros(2)
    v, m1, m2 = u.copy(), np.zeros(2), np.zeros(2)
    for m, g in enumerate(grads):
        if m == 4:
            scheduled, state = Adam(rate), scheduled.state_dict()
            scheduled.load_state_dict(state)
        u = scheduled.step(u, g)
        v, m1, m2 = adam_update(v, g, m1, m2, m + 1, rates[m], 0.9, 0.999, 1e-8)
    np.testing.assert_array_equal(u, v)


def test_best_schedule_curves_pass_through_the_sweep_objectives(tmp_path):
    arrays, meta = _run(tmp_path / "run.npz", _tiny_config())
    steps = list(arrays["curve_steps"])
    for k, T in enumerate(meta["config"]["horizons"]):
        best = arrays["best_index"][k]
        assert arrays["objective"][best, k] == pytest.approx(
            arrays["curve_train_loss"][k, steps.index(T)], rel=1e-9)
        assert arrays["objective"][best, k] == np.nanmin(arrays["objective"][:, k])
        # the recorded learning rate: Section 3.2's schedule at the recorded steps
        alpha0, beta = 10.0 ** arrays["log10_alpha0"][best], 10.0 ** arrays["log10_beta"][best]
        np.testing.assert_allclose(arrays["curve_lr"][k],
                                   alpha0 / (1.0 + np.asarray(steps) / meta["config"]["K"]) ** beta, rtol=1e-14)


def test_smoothing_reproduces_constants_and_is_local():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, 40), rng.uniform(-2, 2, 40)
    _, _, Z = offline_surface.smooth_surface(x, y, np.full(40, 3.5), (0, 1), (-2, 2), grid=10)
    np.testing.assert_allclose(Z, 3.5)
    gx, gy, Z = offline_surface.smooth_surface(np.array([0.0, 1.0]), np.array([0.0, 0.0]),
                                       np.array([1.0, 5.0]), (0, 1), (-1, 1), grid=11, bandwidth=0.05)
    assert Z[5, 0] == pytest.approx(1.0) and Z[5, -1] == pytest.approx(5.0)
    # Brute force at one grid point: the kernel-weighted mean.
    x, y, z = rng.uniform(0, 1, 7), rng.uniform(0, 1, 7), rng.normal(size=7)
    gx, gy, Z = offline_surface.smooth_surface(x, y, z, (0, 1), (0, 1), grid=5, bandwidth=0.3)
    w = np.exp(-0.5 * ((gx[2] - x) / 0.3) ** 2 - 0.5 * ((gy[3] - y) / 0.3) ** 2)
    assert Z[3, 2] == pytest.approx((w * z).sum() / w.sum())


def test_capped_log_loss_and_best_per_horizon_handle_divergence():
    values = np.array([[0.5, np.nan], [0.2, 0.1], [np.inf, 7.0]])
    np.testing.assert_allclose(offline_surface.capped_log_loss(values, 1.0),
                               np.log10([[0.5, 1.0], [0.2, 0.1], [1.0, 1.0]]))
    np.testing.assert_array_equal(offline_surface.best_per_horizon(values), [1, 1])
    assert offline_surface.best_per_horizon(np.array([[np.nan], [np.inf]]))[0] == -1


def test_smd_log10_inverts_the_hypergrad_coordinates():
    u = np.array([np.log(0.01 / (1 - 0.9)), np.log(10.0)])
    la, lb = offline_smd.smd_log10(u, 0.9)
    assert la == pytest.approx(-2.0) and lb == pytest.approx(1.0)


def test_bad_inputs_raise_value_errors_naming_the_parameter():
    with pytest.raises(ValueError, match="profile"):
        offline_config.config_for("huge")
    with pytest.raises(ValueError, match="seed"):
        offline_config.config_for("smoke", seed=-1)
    with pytest.raises(ValueError, match="horizons"):
        _tiny_config(horizons=(8, 4))
    with pytest.raises(ValueError, match="smd_horizons"):
        _tiny_config(smd_horizons=(3,), smd_meta_steps=(1,))
    with pytest.raises(ValueError, match="eval_chunk"):
        _tiny_config(eval_chunk=7)
    with pytest.raises(ValueError, match="smd_anneal_from"):
        _tiny_config(smd_anneal_from=(4, 1))
    with pytest.raises(ValueError, match="smd_meta_lr_final"):
        _tiny_config(smd_meta_lr_final=0.5)
    with pytest.raises(ValueError, match="bandwidth"):
        offline_surface.smooth_surface([0.0], [0.0], [1.0], (0, 1), (0, 1), bandwidth=0)
    with pytest.raises(ValueError, match="samples"):
        offline_design.sample_hyperparameters(0, 0)


def test_samples_follow_the_authors_ranges():
    a, b = offline_design.sample_hyperparameters(2000, 0)
    assert a.min() >= -3 and a.max() <= -0.3 and b.min() >= -2 and b.max() <= 2.3
    assert abs(a.mean() - (-1.65)) < 0.05 and abs(b.mean() - 0.15) < 0.08


def test_run_offline_smoke_on_mnist(tmp_path, data_root):
    arrays, meta = offline.run_offline("smoke", device="cpu", data_root=data_root, results=tmp_path,
                                       show_progress=False)
    assert meta["profile"] == "smoke" and meta["config"]["chapter"] == "offline_mnist"
    assert arrays["objective"].shape == (12, 4)
    assert np.isfinite(arrays["final_train_loss"]).all()
    assert (tmp_path / "offline_mnist_smoke_seed0.npz").exists()
    with pytest.raises(ValueError, match="offline"):
        offline.load_offline(_write_other(tmp_path))


def _write_other(tmp_path):
    return runs.save_result(tmp_path / "other.npz", {"x": np.zeros(1)}, {"config": {"chapter": "x"}})


def test_same_seed_gives_the_same_numbers_and_another_seed_does_not(tmp_path, data_root):
    def run(folder, seed):
        arrays, _ = offline.run_offline("smoke", device="cpu", seed=seed, data_root=data_root,
                                        results=tmp_path / folder, show_progress=False)
        return arrays["objective"]

    first, again, other = run("a", 0), run("b", 0), run("c", 1)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other, equal_nan=True)


def test_smd_start_points_advanced_together_equal_separate_runs(tmp_path, monkeypatch):
    """The GPU path of the SMD stage (a horizon's start points batched), forced on the CPU in
    float64, gives each trajectory of the separate runs to 1e-9, and resumes alike."""
    config = _tiny_config()
    separate, _ = _run(tmp_path / "separate.npz", config)
    monkeypatch.setattr(offline, "batch_smd_starts", lambda device: True)
    stages = []
    together, _ = _run(tmp_path / "together.npz", config, stages.append)
    assert any("starts together" in stage for stage in stages)
    keys = [key for key in separate if key.startswith("smd_")]
    assert len(keys) == 4 * 6   # 4 runs x (u, meta_loss, hypergrad, adam_m, adam_s, adam_t)
    for key in keys:
        np.testing.assert_allclose(together[key], separate[key], rtol=1e-9, atol=1e-12, err_msg=key)

    def stop(stage):
        if stage == "SMD T=2, 2 starts together: 2 meta steps":
            raise Interrupt(stage)

    with pytest.raises(Interrupt):
        _run(tmp_path / "resumed.npz", config, stop)
    resumed, _ = _run(tmp_path / "resumed.npz", config)
    for key in keys:
        np.testing.assert_array_equal(resumed[key], together[key], err_msg=key)

"""Precision and sensitivity of long-horizon hypergradients: perturbations, dtypes, result files, verdicts."""

import numpy as np
import pytest
import torch

from shortbias_lib.experiments.precision import (experiment as precision, analysis as precision_analysis,
                                                 variants as precision_variants)
from shortbias_lib import runs
from shortbias_lib.engine.hyperparams import Hyperparameters
from shortbias_lib.engine.models import mlp_init
from shortbias_lib.engine.batches import StepBatches
from shortbias_lib.engine.training import init_state

SIZES = (20, 8, 3)


def _data(n=120, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, SIZES[0], generator=generator, dtype=dtype)
    labels = torch.randint(0, SIZES[-1], (n,), generator=generator)
    return images, labels


def _problem(dtype=torch.float64, lr=0.05):
    images, labels = _data()
    images = images.to(dtype)
    params = mlp_init(torch.Generator().manual_seed(1), SIZES, 0.3, dtype)
    state = init_state(params)
    hyper = Hyperparameters(lr=lr, momentum=0.9, beta=1.0, K=20.0, learn=("lr", "beta"), space="log")
    batches = StepBatches(images, labels, 10, seed=4)
    objective = [(images[:60], labels[:60])]
    return state, hyper, batches, objective


def _perturbed(state, eps, direction=1):
    params = precision_variants.perturb(state.params, eps, torch.Generator().manual_seed(direction))
    return init_state(params, state.velocity)


def _tiny_config(**changes):
    config = dict(precision.BASE)
    config.update({"sizes": SIZES, "init_std": 0.3, "batch_size": 10, "warm_steps": 3, "K": 20.0,
                   "horizons": (2, 5), "train_limit": None, "objective_examples": 60, "eval_chunk": 30,
                   "perturbed_runs": 2, "perturbed_runs_float32": 1, "batch_resamples": 1})
    config.update(changes)
    return precision.check_config(config)


def test_zero_perturbation_changes_nothing_exactly():
    state, hyper, batches, objective = _problem()
    zero = _perturbed(state, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(zero.params, state.params))
    loss0, grad0, bad0, _ = precision_variants.measure(state, hyper, batches, 8, objective)
    loss1, grad1, bad1, _ = precision_variants.measure(zero, hyper, batches, 8, objective)
    assert bad0 == bad1 == -1
    assert loss1 == loss0 and np.array_equal(grad1, grad0)


def test_smaller_perturbation_gives_proportionally_smaller_difference_at_short_horizon():
    state, hyper, batches, objective = _problem()
    _, reference, _, _ = precision_variants.measure(state, hyper, batches, 5, objective)
    differences = []
    for eps in (1e-5, 1e-7, 1e-9):
        _, grad, _, _ = precision_variants.measure(_perturbed(state, eps), hyper, batches, 5, objective)
        differences.append(np.abs(grad - reference).max() / np.abs(reference).max())
    assert 0 < differences[2] < differences[1] < differences[0]
    # Linear response: 100 times smaller perturbation, about 100 times smaller difference.
    for big, small in zip(differences, differences[1:]):
        assert 30 < big / small < 300


def test_perturbation_is_relative_to_each_tensor_and_reproducible():
    params = (torch.full((50, 40), 2.0, dtype=torch.float64), torch.full((50,), 1e-3, dtype=torch.float64))
    a = precision_variants.perturb(params, 1e-3, torch.Generator().manual_seed(3))
    b = precision_variants.perturb(params, 1e-3, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    for p, q in zip(params, a):
        relative = ((q - p).norm() / p.norm()).item()
        assert 0.5e-3 < relative < 2e-3
    with pytest.raises(ValueError, match="eps"):
        precision_variants.perturb(params, -1.0, torch.Generator())


def test_float32_and_float64_agree_tightly_at_a_short_horizon():
    grads = {}
    for dtype in (torch.float32, torch.float64):
        state64, hyper, _, _ = _problem(torch.float64)
        images, labels = _data()   # float32 values, exact in float64
        state = init_state(tuple(p.to(torch.float32).to(dtype) for p in state64.params))
        batches = StepBatches(images.to(dtype), labels, 10, seed=4)
        for path in ("fast", "double backward"):
            loss, grad, bad, _ = precision_variants.measure(state, hyper, batches, 5,
                                                   [(images[:60].to(dtype), labels[:60])], path=path)
            assert bad == -1
            grads[dtype, path] = (loss, grad)
    l64, g64 = grads[torch.float64, "fast"]
    for (dtype, path), (loss, grad) in grads.items():
        assert abs(loss - l64) / l64 < 1e-5
        assert np.all(np.abs(grad - g64) <= 1e-4 * np.abs(g64) + 1e-7)
    # In float64 the two paths agree to roundoff.
    assert np.allclose(grads[torch.float64, "double backward"][1], g64, rtol=1e-10, atol=0)


def test_measure_draws_batches_lazily_and_reports_divergence():
    state, hyper, batches, objective = _problem()
    calls = []

    def counted(t):
        calls.append(t)
        return batches(t)

    precision_variants.measure(state, hyper, counted, 7, objective)
    assert calls == list(range(7))

    def broken(t):   # a NaN input at step 3 makes the loss NaN there
        images, labels = batches(t)
        return (images * float("nan") if t == 3 else images), labels

    loss, grad, bad, _ = precision_variants.measure(state, hyper, broken, 10, objective)
    assert np.isnan(loss) and np.all(np.isnan(grad)) and bad == 3


def test_variants_follow_the_configuration():
    config = _tiny_config()
    kinds = [v["kind"] for v in precision_variants.variants(config)]
    assert kinds == ["float64", "float32", "float32 double backward", "float64 perturbed", "float64 perturbed",
                     "float32 perturbed", "float64 small perturbation", "float64 other minibatches",
                     "float32 other minibatches"]
    assert [v["path"] for v in precision_variants.variants(config)][1:3] == ["fast", "double backward"]
    assert len(precision_variants.variants(_tiny_config(small_perturbation=0.0, batch_resamples=0))) == 6
    assert len(precision_variants.variants(_tiny_config(batch_resamples=3))) == 13


def test_profiles_and_bad_configurations():
    for profile in ("smoke", "quick", "paper", "archive"):
        assert precision.config_for(profile)["chapter"] == precision.CHAPTER
    assert precision.config_for("archive")["horizons"] == (100, 300, 1000, 5000)
    with pytest.raises(ValueError, match="profile"):
        precision.config_for("huge")
    with pytest.raises(ValueError, match="horizons"):
        _tiny_config(horizons=(5, 2))
    with pytest.raises(ValueError, match="perturbation"):
        _tiny_config(perturbation=0.0)
    with pytest.raises(ValueError, match="eval_chunk"):
        _tiny_config(eval_chunk=25)


def test_result_file_round_trips_is_reused_and_resumes(tmp_path):
    config = _tiny_config()
    data = _data()
    path = tmp_path / "precision.npz"
    arrays, meta = result = precision.run_experiment(config, data, path, profile="smoke", seed=0)
    assert isinstance(result, runs.Result)
    assert meta["stage"] == "finished" and meta["config"]["chapter"] == precision.CHAPTER
    assert np.all(arrays["done"]) and np.all(np.isfinite(arrays["grad"]))
    loaded, loaded_meta = precision.load_precision(path)
    assert np.array_equal(loaded["grad"], arrays["grad"]) and loaded_meta == meta
    assert list(loaded["summary_verdict"]) == precision_analysis.verdicts(loaded)

    def fail(stage):
        raise AssertionError(f"a finished file must be reused, not recomputed ({stage})")

    again, again_meta = precision.run_experiment(config, data, path, profile="smoke", seed=0,
                                                 on_checkpoint=fail)
    assert again_meta["time_utc"] == meta["time_utc"]

    # Interrupted after a few hypergradients, then resumed: the same numbers, bit for bit.
    other = tmp_path / "interrupted.npz"
    stages = []

    def interrupt(stage):
        stages.append(stage)
        if len(stages) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        precision.run_experiment(config, data, other, profile="smoke", seed=0, on_checkpoint=interrupt)
    assert other.with_suffix(".partial.npz").exists() and not other.exists()
    resumed, _ = precision.run_experiment(config, data, other, profile="smoke", seed=0,
                                          on_checkpoint=stages.append)
    # The warm start and 3 hypergradients were kept; the rest and the rounded run were computed.
    assert len(stages) == 4 + (arrays["done"].size - 3) + 1
    assert np.array_equal(resumed["grad"], arrays["grad"])
    assert not other.with_suffix(".partial.npz").exists()
    runs.save_result(tmp_path / "other.npz", {"x": np.zeros(1)}, {"config": {"chapter": "nope"}})
    with pytest.raises(ValueError, match="path"):
        precision.load_precision(tmp_path / "other.npz")


def test_an_interrupted_recomputation_leaves_no_checkpoint_beside_the_reused_file(tmp_path):
    config, data, path = _tiny_config(), _data(), tmp_path / "precision.npz"
    finished = precision.run_experiment(config, data, path, profile="smoke", seed=0)

    def interrupt(stage):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # --no-resume, stopped at its first checkpoint
        precision.run_experiment(config, data, path, profile="smoke", seed=0, resume=False, on_checkpoint=interrupt)
    assert runs.partial_path(path).exists()
    other = runs.partial_path(tmp_path / "other.npz")
    runs.save_result(other, {"x": np.zeros(1)}, {"config": {"chapter": "another run"}})
    reused = precision.run_experiment(config, data, path, profile="smoke", seed=0)
    assert reused.meta["time_utc"] == finished.meta["time_utc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.partial.npz", "precision.npz"]
    with pytest.raises(KeyboardInterrupt):
        precision.run_experiment(config, data, path, profile="smoke", seed=0, resume=False, on_checkpoint=interrupt)
    precision.run_experiment(config, data, path, profile="smoke", seed=0, resume=False)  # written afresh
    assert not runs.partial_path(path).exists()


def _fake(f32, perturbed, batches=(1.0, 1.0, 1.0), f32_other=None):
    """Result arrays with float64 gradient (1, 1) at each horizon and the given relative differences
    (float32 on the other minibatches: ``f32_other``, default the same as on the reference's)."""
    f32, perturbed = np.asarray(f32, dtype=np.float64), np.asarray(perturbed, dtype=np.float64)
    f32_other = f32 if f32_other is None else np.asarray(f32_other, dtype=np.float64)
    H = len(f32)
    grad = np.ones((5, H, 2))
    grad[1] += f32[:, None]
    grad[2] += perturbed[:, None]
    grad[3] += np.asarray(batches, dtype=np.float64)[:H, None]
    grad[4] = grad[3] * (1 + f32_other[:, None])
    return {"horizons": np.array([100, 1000, 5000][:H]),
            "variant_kind": np.array(["float64", "float32", "float64 perturbed", "float64 other minibatches",
                                      "float32 other minibatches"]),
            "variant_eps": np.array([0.0, 0.0, 1e-7, 0.0, 0.0]), "variant_direction": np.array([0, 0, 1, 0, 0]),
            "variant_batches": np.array([0, 0, 0, 1, 1]),
            "grad": grad, "meta_loss": np.ones((5, H)), "rounded_objective": np.ones(H),
            "rounded_lost": np.full(100, 0.1)}


def test_verdicts_and_conclusion_come_from_the_numbers():
    arrays = _fake([1e-4, 0.3, 0.5], [1e-7, 0.2, 1e-4])
    assert precision_analysis.verdicts(arrays) == ["agree", "sensitivity", "roundoff"]
    arrays.update(precision_analysis.summary(arrays))
    assert list(arrays["summary_verdict"]) == ["agree", "sensitivity", "roundoff"]
    assert list(arrays["summary_perturbed_over"]) == [0, 1, 0]
    text = precision_analysis.conclusion(arrays)
    assert (text.index("At T = 100 all 1 float32 computations agree") < text.index("sensitivity is")
            < text.index("float64 is stable there"))
    assert "at T = 1000 float64 would not make them more meaningful" in text
    assert "at T = 5000 whether its hypergradients are right" in text and "erratic" not in text
    assert "sensitivity is" in precision_analysis.headline(arrays)
    assert "float32 roundoff is the issue" in precision_analysis.headline(arrays)
    # float32's error a thousand times smaller on the other minibatches: erratic.
    arrays = _fake([1e-2, 0.5, 0.5], [1e-7, 1e-7, 1e-7], f32_other=[1e-5, 1e-4, 1e-4])
    arrays.update(precision_analysis.summary(arrays))
    assert "erratic" in precision_analysis.conclusion(arrays)
    arrays = _fake([1e-5, 1e-4], [1e-5, 1e-4])
    arrays.update(precision_analysis.summary(arrays))
    assert list(arrays["summary_verdict"]) == ["agree", "agree"]
    assert "as good as float64" in precision_analysis.headline(arrays)
    assert "it gets float64's hypergradients" in precision_analysis.conclusion(arrays)
    diverged = _fake([np.nan, 0.1], [0.1, 0.1])
    assert precision_analysis.verdicts(diverged)[0] == "diverged"


def test_rounding_the_weights_loses_updates_below_half_a_float32_unit():
    state, _, batches, objective = _problem()
    state = init_state(tuple(p.float().double() for p in state.params))
    tiny = Hyperparameters(lr=1e-12, momentum=0.0, beta=1.0, K=20.0, learn=("lr", "beta"))
    objective_values, lost = precision_variants.rounded_weights_run(state, tiny, batches, (2, 4), objective)
    # Every update of a nonzero weight is lost (the zero biases do move): the weights stay put.
    assert lost.shape == (4,) and np.all(lost > 0.9)
    start, _, _, _ = precision_variants.measure(state, tiny, batches, 1, objective)
    assert objective_values == pytest.approx([start, start], rel=1e-9)
    normal = Hyperparameters(lr=0.5, momentum=0.0, beta=1.0, K=20.0, learn=("lr", "beta"))
    _, lost = precision_variants.rounded_weights_run(state, normal, batches, (4,), objective)
    assert np.all(lost < 0.5)


def test_a_result_from_other_data_is_recomputed(tmp_path):
    config, data, path = _tiny_config(), _data(), tmp_path / "precision.npz"
    _, meta = precision.run_experiment(config, data, path, profile="smoke", seed=0, data_fingerprint=["a"])
    assert meta["data_fingerprint"] == ["a"]
    stages = []
    precision.run_experiment(config, data, path, profile="smoke", seed=0, data_fingerprint=["a"],
                             on_checkpoint=stages.append)
    assert stages == []                     # the same data: reused
    precision.run_experiment(config, data, path, profile="smoke", seed=0, data_fingerprint=["b"],
                             on_checkpoint=stages.append)
    assert stages                           # other data: recomputed

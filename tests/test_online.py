"""Online SMD bookkeeping: when adaptation runs and stops, the decay, divergence, files."""

import math

import numpy as np
import pytest
import torch

from shortbias_lib.engine import batches, models
from shortbias_lib.experiments.online import claims as online_claims, experiment as online, figures as plot_online
from shortbias_lib.experiments.online.loop import Checkpointing, OnlineSettings, online_run
from shortbias_lib.experiments.online.record import OnlineRun
from shortbias_lib.runs import load_result

SIZES = (784, 12, 10)


def _data(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 28, 28, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return images, labels


def _params(seed=0):
    return models.mlp_init(torch.Generator().manual_seed(seed), sizes=SIZES, init_std=0.1)


class CountingSampler(batches.BatchSampler):
    """A batch sampler that counts how many batches were drawn."""

    calls = 0

    def __call__(self):
        self.calls += 1
        return super().__call__()


def _run(mode="stochastic", lr=0.01, steps=30, adapt_until=14, adapt_every=5, meta_steps=2,
         horizon=3, eval_every=10, meta_sampler=None, checkpoint=None, meta_batches="fresh"):
    images, labels = _data()
    train = batches.BatchSampler(images, labels, 20, seed=0)
    meta = meta_sampler or batches.BatchSampler(images, labels, 20, seed=1)
    settings = OnlineSettings(mode=mode, steps=steps, adapt_until=adapt_until, adapt_every=adapt_every,
                              meta_steps=meta_steps, horizon=horizon, meta_lr=0.05, eval_every=eval_every,
                              meta_batches=meta_batches)
    return online_run(
        models.mlp_apply, _params(), train, meta, lr, 0.9, settings=settings,
        eval_fn=lambda p: models.mean_loss(models.mlp_apply, p, images, labels),
        show_progress=False, checkpoint=checkpoint)


def test_adaptation_happens_every_adapt_every_steps_and_stops_at_adapt_until():
    run = _run(steps=30, adapt_until=14, adapt_every=5)
    assert run.adapt_steps.tolist() == [0, 5, 10]
    # The hyperparameters change only at adaptation steps, and mu is frozen from adapt_until on.
    changes = np.flatnonzero(np.diff(run.momentum) != 0) + 1
    assert set(changes.tolist()) <= {5, 10}
    assert np.all(run.momentum[14:] == run.momentum[13])
    assert run.settled_momentum == run.momentum[14]
    assert math.isclose(run.settled_lr, run.eff_lr[14], rel_tol=1e-12)
    # SMD moved the rate away from its start (2 meta steps of Adam at 0.05 per adaptation).
    assert not math.isclose(run.eff_lr[0], 0.01 / 0.1, rel_tol=1e-3)


def test_effective_rate_decays_exponentially_to_1e_4_at_the_last_step():
    run = _run(steps=30, adapt_until=14)
    assert math.isclose(run.eff_lr[-1], 1e-4, rel_tol=1e-9)
    assert math.isclose(run.eff_lr[14], run.settled_lr, rel_tol=1e-9)
    log_rate = np.log(run.eff_lr[14:])
    assert np.allclose(np.diff(log_rate, 2), 0.0, atol=1e-9)  # straight line in log space
    assert np.all(np.diff(log_rate) < 0)


def test_baseline_never_adapts_and_matches_a_hand_written_loop():
    images, labels = _data()
    run = _run(mode="baseline", lr=0.05, steps=20, adapt_until=10)
    assert run.adapt_steps.size == 0
    assert np.allclose(run.eff_lr[:10], 0.05 / 0.1) and np.allclose(run.momentum, 0.9)
    # Independent computation: the paper's update with the decay formula written out.
    sampler = batches.BatchSampler(images, labels, 20, seed=0)
    w, v = list(_params()), [torch.zeros_like(p) for p in _params()]
    for t in range(20):
        eff = 0.5 if t < 10 else 0.5 * (1e-4 / 0.5) ** ((t - 10) / (19 - 10))
        x, y = sampler()
        w = [p.detach().requires_grad_(True) for p in w]
        loss = models.loss_fn(models.mlp_apply, w, x, y)
        assert math.isclose(loss.item(), run.losses[t], rel_tol=1e-5)
        g = torch.autograd.grad(loss, w)
        v = [0.9 * vi - eff * 0.1 * gi for vi, gi in zip(v, g)]
        w = [p.detach() + vi for p, vi in zip(w, v)]
        assert math.isclose(run.eff_lr[t], eff, rel_tol=1e-9)
    assert math.isclose(run.eval_losses[-1],
                        models.mean_loss(models.mlp_apply, w, images, labels), rel_tol=1e-5)


def test_evaluations_at_multiples_of_eval_every_and_at_the_end():
    run = _run(steps=25, adapt_until=10, eval_every=10)
    assert run.eval_steps.tolist() == [0, 10, 20, 25]
    assert run.final_train_loss == run.eval_losses[-1]


def test_a_diverged_run_is_recorded_with_its_step_and_plotted_without_nan():
    import matplotlib

    matplotlib.use("Agg", force=True)
    run = _run(mode="baseline", lr=1e15, steps=30, adapt_until=14)  # overflows float32
    assert run.diverged and 0 < run.diverged_step < 30
    assert not np.isfinite(run.losses[run.diverged_step])
    assert np.all(np.isfinite(run.losses[:run.diverged_step]))
    assert math.isnan(run.final_train_loss) and math.isnan(run.test_error)
    runs = {"b": run}
    fig = plot_online.figure([("diverging", runs)])
    lines = [line for axes in fig.axes for line in axes.get_lines()]
    assert all(np.all(np.isfinite(np.asarray(line.get_ydata(), dtype=float))) for line in lines)
    assert any(line.get_marker() == "x" for line in lines)
    texts = [t.get_text() for axes in fig.axes for t in axes.texts]
    assert f"diverged at step {run.diverged_step}" in texts
    assert "yes, step" in plot_online.summary_table(runs).data


def test_lookahead_batches_fresh_at_every_meta_step_or_shared_by_an_adaptation():
    """Algorithm 1 draws new minibatches at every meta step ("fresh", 3 meta steps here);
    "shared" draws one set per adaptation. Two adaptations in each case."""
    images, labels = _data()
    for mode, per_meta_step in (("stochastic", 3 + 3), ("deterministic", 1)):
        for meta_batches, draws_per_adaptation in (("fresh", 3), ("shared", 1)):
            sampler = CountingSampler(images, labels, 20, seed=1)
            run = _run(mode=mode, steps=24, adapt_until=20, adapt_every=10, meta_steps=3,
                       horizon=3, meta_sampler=sampler, meta_batches=meta_batches)
            assert run.adapt_steps.tolist() == [0, 10]
            assert sampler.calls == 2 * draws_per_adaptation * per_meta_step, (mode, meta_batches)


def test_meta_batches_is_checked():
    with pytest.raises(ValueError, match="meta_batches must be one of fresh, shared"):
        OnlineSettings(meta_batches="once")


def test_round_trip_through_arrays():
    run = _run(steps=12, adapt_until=6)
    back = OnlineRun.from_arrays(run.to_arrays(prefix="k__"), prefix="k__")
    for name in OnlineRun.ARRAYS:
        assert np.array_equal(getattr(run, name), getattr(back, name), equal_nan=True)
    assert back.label == run.label and back.diverged == run.diverged


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="adapt_until"):
        _run(steps=10, adapt_until=9)
    with pytest.raises(ValueError, match="mode"):
        _run(mode="greedy")
    with pytest.raises(ValueError, match="dataset"):
        online.run_dataset("svhn", "smoke")


def test_run_online_smoke_writes_resumable_results(tmp_path, data_root):
    out = online.run_online("smoke", device="cpu", data_root=data_root, results=tmp_path,
                            show_progress=False)
    path = tmp_path / "online_smoke_seed0.npz"
    arrays, meta = load_result(path)
    assert meta["config"]["chapter"] == online.CHAPTER
    assert meta["device"] == "cpu" and set(meta["run_devices"].values()) == {"cpu"}
    assert "reported_names" not in arrays  # the paper states no number for this experiment
    assert out.meta == meta and out.arrays.keys() == arrays.keys()
    runs = online.runs_from_arrays(out.arrays)
    assert list(runs) == [str(k) for k in arrays["run_keys"]] and set(runs) == set(meta["run_devices"])
    assert list(runs)[0] == "mnist__baseline__0.1"  # in the order they ran
    assert {k.split("__")[0] for k in runs} == {"mnist", "cifar10"}
    assert set(online.runs_from_arrays(out.arrays, "cifar10")) == {k for k in runs if k.startswith("cifar10__")}
    # Each run's file holds what the gathered file holds under its key.
    for key, run in runs.items():
        alone, _ = load_result(online.checkpoint_path("smoke", 0, key, tmp_path / "checkpoints"))
        assert np.array_equal(OnlineRun.from_arrays(alone).eff_lr, run.eff_lr, equal_nan=True)
    files = sorted(tmp_path.rglob("*.npz"))
    stamps = [p.stat().st_mtime_ns for p in files]
    again = online.run_online("smoke", device="cpu", data_root=data_root, results=tmp_path,
                              show_progress=False)
    assert [p.stat().st_mtime_ns for p in files] == stamps  # reused, not recomputed
    assert again.meta == out.meta
    # Without the gathered file, it is gathered again from the runs' files (not recomputed).
    path.unlink()
    checkpoints = [p for p in files if p != path]
    third = online.run_online("smoke", device="cpu", data_root=data_root, results=tmp_path,
                              show_progress=False)
    assert [p.stat().st_mtime_ns for p in checkpoints] == [s for p, s in zip(files, stamps) if p != path]
    for name, value in out.arrays.items():
        assert np.array_equal(value, third.arrays[name], equal_nan=value.dtype.kind == "f"), name


def test_chance_step_finds_a_network_that_died_at_chance_level():
    def run_with(losses):
        n = len(losses)
        return OnlineRun("r", "deterministic", 0.01, 0.9, np.ones(n), np.ones(n),
                                np.ones(n), np.arange(n) * 10, np.asarray(losses))

    assert run_with([2.4, 1.0, 0.5, 2.30, 2.31]).chance_step() == 30
    assert run_with([2.4, 1.0, 0.5, 0.4]).chance_step() == -1
    assert run_with([2.4, 2.35, 2.31]).chance_step() == -1  # never learned: not a collapse


@pytest.mark.parametrize("mode", ["stochastic", "deterministic"])
def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, mode):
    path = tmp_path / "partial.npz"
    common = dict(mode=mode, steps=30, adapt_until=14, adapt_every=5, eval_every=5)
    whole = _run(**common)
    first_leg = {"device": "cpu", "git_commit": "abc", "torch": "t", "time_utc": "then", "host": "h"}
    assert _run(**common, checkpoint=Checkpointing(path, 7, {"a": 1}, stop_after=8, provenance=first_leg)) is None
    # (stopped at the checkpoint of step 10)
    arrays, _ = load_result(path)
    assert int(arrays["t"]) == 10
    resumed = _run(**common, checkpoint=Checkpointing(path, 7, {"a": 1}, provenance={"git_commit": "def"}))
    for name in OnlineRun.ARRAYS:
        assert np.array_equal(getattr(whole, name), getattr(resumed, name), equal_nan=True), name
    assert resumed.final_train_loss == whole.final_train_loss
    # The resumed run knows the leg that computed its first ten steps; the whole run none.
    assert resumed.earlier_legs == [{"device": "cpu", "git_commit": "abc", "torch": "t", "time_utc": "then",
                                     "stage": "step 10"}]
    assert whole.earlier_legs == []
    # A checkpoint made with another configuration is ignored.
    other = _run(**common, checkpoint=Checkpointing(path, 7, {"a": 2}))
    assert np.array_equal(other.eff_lr, whole.eff_lr)


def test_a_fresh_run_with_the_same_seed_repeats_every_number(tmp_path, data_root):
    first, second = (online.run_online("smoke", device="cpu", data_root=data_root,
                                       results=tmp_path / folder, show_progress=False)
                     for folder in ("a", "b"))
    repeats = online.runs_from_arrays(second.arrays)
    for key, run in online.runs_from_arrays(first.arrays).items():
        assert np.array_equal(run.eff_lr, repeats[key].eff_lr, equal_nan=True)
        assert np.array_equal(run.eval_losses, repeats[key].eval_losses, equal_nan=True)


def test_the_archive_profile_is_the_papers_mnist_scale():
    archive, paper = online.SIZES["archive"], online.SIZES["paper"]
    assert list(archive) == ["mnist"]
    assert archive["mnist"] == paper["mnist"]
    assert (archive["mnist"]["meta_steps"], archive["mnist"]["meta_lr"]) == (100, 1e-2)
    assert archive["mnist"]["meta_batches"] == "fresh"   # Algorithm 1
    assert archive["mnist"]["init_lrs"] == archive["mnist"]["det_lrs"] == online.PAPER_INIT_LRS["mnist"]
    with pytest.raises(ValueError, match="dataset must be one of mnist"):
        online.run_dataset("cifar10", "archive")


def test_a_network_back_at_chance_level_is_stopped_after_chance_patience_evaluations():
    """A scripted training loss: learns, then sits at chance level (log 10) from the 4th
    evaluation. With patience 3 the run stops at the 6th evaluation (step 50): the records
    after it are NaN, its settled rate is NaN (stopped before adaptation ended) and the
    claims read it as back at chance; patience 0 trains to the end."""
    chance = math.log(10)
    script = [2.4, 1.0, 0.5] + [chance + 0.01] * 20

    def run_with(patience):
        images, labels = _data()
        calls = iter(script)
        settings = OnlineSettings(mode="stochastic", steps=100, adapt_until=60, adapt_every=5, meta_steps=1,
                                  horizon=2, meta_lr=0.05, eval_every=10, chance_patience=patience)
        return online_run(models.mlp_apply, _params(), batches.BatchSampler(images, labels, 20, seed=0),
                          batches.BatchSampler(images, labels, 20, seed=1), 0.01, 0.9, settings=settings,
                          eval_fn=lambda p: next(calls), test_fn=lambda p: 0.9, show_progress=False)

    stopped = run_with(3)
    assert not stopped.diverged and stopped.stopped_step == 50 == stopped.last_finite_step
    assert stopped.chance_step() == 30 and list(stopped.eval_steps) == [0, 10, 20, 30, 40, 50]
    assert np.all(np.isfinite(stopped.losses[:50])) and np.all(np.isnan(stopped.losses[50:]))
    assert math.isnan(stopped.settled_lr) and stopped.test_error == 0.9
    assert stopped.final_train_loss == pytest.approx(chance + 0.01)
    assert online_claims.instability(stopped) == "chance from step 30"
    assert "chance level from step 30**, stopped there at step 50" in plot_online.summary_table({"r": stopped}).data
    full = run_with(0)
    assert full.stopped_step == -1 and full.last_finite_step == 100 and full.eval_steps[-1] == 100
    with pytest.raises(ValueError, match="chance_patience"):
        OnlineSettings(chance_patience=-1)

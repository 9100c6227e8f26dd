"""Legible pages: every figure the library draws shows all its text (tick labels, axis
labels, titles, legends, annotations) at 9 pt or more in the book's 660 px text column,
drawn with the book's style (``plotting.use_book_style``, which every chapter's
``notebook.setup`` installs). The figures are drawn from the committed archives where the
chapters draw them from those, otherwise from small synthetic inputs of the same shape.
Figures drawn in the chapters themselves are checked as they are drawn: the style's
figure hook warns (on stderr, which fails the book's build) when a PNG drawing has text
below 9 pt as shown."""

import functools
import io
import math
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from shortbias_lib.plots import common as plotting  # noqa: E402
from shortbias_lib.plots.common import (MIN_DISPLAYED_PT, LegibilityWarning,  # noqa: E402
                                    smallest_displayed_font_pt)


@pytest.fixture(autouse=True)
def book_style():
    with matplotlib.rc_context():
        plotting.use_book_style()
        yield
    plt.close("all")


def _png_width(fig):
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")  # as IPython's inline backend does
    return Image.open(buffer).size[0]


# ---------------------------------------------------------------- the measure and the hook

QUIET = pytest.mark.filterwarnings("ignore::shortbias_lib.plots.common.LegibilityWarning")


@QUIET
@pytest.mark.parametrize("width", [4.0, 7.0, 12.0])
def test_natural_width_is_that_of_the_inline_png(width):
    fig, ax = plt.subplots(figsize=(width, 3))
    ax.plot([1, 10], [1, 100])
    ax.set(title="a title", xlabel="x", ylabel="y")
    assert abs(plotting.natural_width_px(fig) - _png_width(fig)) <= 1.5


@QUIET
def test_displayed_size_is_font_size_scaled_to_the_column():
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.set_title("narrow", fontsize=10)
    ax.set_xticks([]), ax.set_yticks([])
    assert smallest_displayed_font_pt(fig) == pytest.approx(10 * 100 / 96)  # 100 dpi: no shrink
    fig.set_size_inches(13.2, 3)  # about twice the column: everything shown at about half size
    natural = plotting.natural_width_px(fig)
    assert natural > 1.5 * 660
    assert smallest_displayed_font_pt(fig) == pytest.approx(10 * 100 / 96 * 660 / natural)
    fig.set_dpi(200)  # the same figure at another dpi is shown at the same size
    assert smallest_displayed_font_pt(fig) == pytest.approx(10 * 100 / 96 * 660 / natural, rel=0.02)


def test_hidden_and_empty_texts_do_not_count():
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.text(0.5, 0.5, "tiny", fontsize=3).set_visible(False)
    ax.text(0.5, 0.5, " ", fontsize=3)
    assert smallest_displayed_font_pt(fig) >= MIN_DISPLAYED_PT


def test_drawing_a_figure_with_too_small_text_warns():
    fig, ax = plt.subplots(figsize=(12, 3))  # shown at about 60% of its size
    ax.plot([0, 1])
    ax.set_title("wide")
    with pytest.warns(LegibilityWarning, match="pt in the book's 660 px column"):
        _png_width(fig)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.annotate("small note", (0.5, 0.5), fontsize=6)
    with pytest.warns(LegibilityWarning, match="'small note' at 6.2 pt"):
        _png_width(fig)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([0, 1], label="fine")
    ax.legend()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegibilityWarning)
        _png_width(fig)


def test_the_book_style_is_installed_by_notebook_setup():
    from shortbias_lib.notebook import setup

    matplotlib.rcParams["figure.hooks"] = []
    matplotlib.rcParams["font.size"] = 6
    setup("smoke", device="cpu", show=False)
    assert matplotlib.rcParams["font.size"] == plotting.BOOK_STYLE["font.size"]
    assert matplotlib.rcParams["figure.hooks"] == [plotting.WATCH_HOOK]
    setup("smoke", device="cpu", show=False)  # once, however often a chapter calls it
    assert matplotlib.rcParams["figure.hooks"] == [plotting.WATCH_HOOK]


def test_notebook_setup_caps_torch_s_threads_and_records_them(tmp_path):
    import torch

    from shortbias_lib.notebook import setup

    before = torch.get_num_threads()
    try:
        assert setup("smoke", device="cpu", results=tmp_path, show=False).threads == before  # left alone
        assert setup("smoke", device="cpu", results=tmp_path, show=False, threads=before + 4).threads == before
        context = setup("smoke", device="cpu", results=tmp_path, show=False, threads=1)
        assert context.threads == torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------- every library figure

def _unrolled_graph():
    return plotting.unrolled_sgd_graph(steps=2).figure


def _schedule_panels():
    fig, axes = plotting.figure(3, width=2.2, height=2.4)  # as the NQM chapters draw them
    steps = np.arange(1, 102)
    series = {name: dict(losses=1.0 / steps ** k, alphas=0.1 / steps[1:] ** (k / 2),
                         mus=0.9 - 0.1 / steps[1:])
              for k, name in enumerate(plotting.SCHEDULE_COLORS, 1)}
    plotting.schedule_panels(axes[0], series)
    return fig


def _horizon_lr_curves():
    lrs = np.logspace(-3, 0.6, 30)
    ks = [10, 50, 250]
    fixed = np.array([1 + (np.log(lrs) + i) ** 2 for i in range(3)])
    return plotting.horizon_lr_curves(ks, lrs, fixed, 0.5 * fixed[:, ::-1] + 1)


def _figure3_panels(case):
    steps = np.arange(1, 22)
    rows = lambda f: np.stack([np.stack([f(k) for k in (1, 2, 3)])] * 2)  # noqa: E731  (case, schedule, T)
    fig3 = {"schedules": np.array(list(plotting.SCHEDULE_COLORS)),
            "losses": rows(lambda k: 1.0 / steps ** k), "alphas": rows(lambda k: 0.1 / steps[1:] ** (k / 2)),
            "mus": rows(lambda k: 0.9 - 0.1 / steps[1:] / k),
            "loss_high50": rows(lambda k: 0.5 / steps ** k), "loss_low50": rows(lambda k: 0.5 / steps ** (k / 3))}
    return plotting.figure3_panels(fig3, case, curvature_groups=case == 0)


@functools.cache
def _offline_archive():
    from shortbias_lib.experiments.offline import experiment as offline

    arrays, meta = offline.load_offline(offline.archive_path())
    return arrays, meta["config"]


def _offline_surfaces():
    from shortbias_lib.experiments.offline import figures as plot_offline

    return plot_offline.plot_surfaces(*_offline_archive())


def _offline_training_curves():
    from shortbias_lib.experiments.offline import figures as plot_offline

    return plot_offline.plot_training_curves(*_offline_archive())


def _offline_smd_losses():
    from shortbias_lib.experiments.offline import figures as plot_offline

    return plot_offline.plot_smd_losses(*_offline_archive())


def _offline_smd_states():
    from shortbias_lib.experiments.offline import figures as plot_offline

    arrays, config = _offline_archive()
    return plot_offline.plot_smd_states([("seed 0", arrays, config), ("seed 1", arrays, config)])


@functools.cache
def _online_archive():
    from shortbias_lib.experiments.online import experiment as online
    from shortbias_lib.runs import load_result

    return online.runs_from_arrays(load_result(online.earlier_archive_path())[0])


def _online_figure(panels):
    from shortbias_lib.experiments.online import figures as plot_online

    archived = _online_archive()
    return plot_online.figure([(title, archived) for title in panels])


def _online_one_panel():
    return _online_figure(["MNIST, MLP, paper's scale (archived)"])


def _online_two_panels():
    return _online_figure(["MNIST, MLP", "CIFAR-10, CNN"])


def _measurement():
    rng = np.random.default_rng(0)
    k, bins = 20, 12
    top = np.sort(10 ** rng.uniform(-1, 2, k))[::-1]
    m = {"top_values": top, "top_residuals": 0.01 * top, "slq_nodes": 10 ** rng.uniform(-4, 0, (4, 30)),
         "slq_weights": rng.dirichlet(np.ones(30), 4), "dim": 89610,
         "top_noise": top * 0.1, "top_noise_se": top * 0.01, "top_grad": np.sqrt(top) * 0.01}
    info = {"bins": {"h": np.logspace(-4, -1, bins), "noise": np.logspace(-3, 0, bins),
                     "count": np.arange(bins) + 1.0, "grad2": np.logspace(-6, -3, bins)}}
    return m, info


def _paper_figure1():
    import torch

    from shortbias_lib.nqm.dynamics import dynamics
    from shortbias_lib.nqm.montecarlo import monte_carlo
    from shortbias_lib.nqm.problem import constant_schedule, decayed_schedule

    h = torch.tensor([1.0, 0.02], dtype=torch.float64)
    start = (1 / h, torch.tensor([1.0, 4.0], dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    schedules = constant_schedule(0.1, 30), decayed_schedule(torch.tensor(1.0, dtype=torch.float64), 20, 10, 0.01)
    losses = [dynamics(h, *start, *schedule) for schedule in schedules]
    mcs = [monte_carlo(h, *start, *schedule, n_samples=20, seed=0, n_paths=1) for schedule in schedules]
    return plotting.paper_figure1(h, *mcs, *losses, 20)


def _theorem1_figure():
    import torch

    from shortbias_lib.nqm.dynamics import dynamics, theorem1_trajectory
    from shortbias_lib.nqm.montecarlo import monte_carlo

    h = torch.tensor([1.0, 0.3, 0.05], dtype=torch.float64)
    problem = (h, 1 / h, torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
               0.4 * 0.97 ** torch.arange(20, dtype=torch.float64), torch.linspace(0.5, 0.9, 20, dtype=torch.float64))
    exact, mc = theorem1_trajectory(*problem), monte_carlo(*problem, n_samples=20, seed=0)
    bands = {k: 0.1 * getattr(exact, k).abs() for k in ("mean_theta", "var_theta")}
    return plotting.theorem1_figure(h, exact, mc, bands, dynamics(*problem), ["tab:blue", "tab:orange", "tab:green"])


def _theorem3_figure():
    import torch

    from shortbias_lib.nqm.dynamics import greedy_schedule
    from shortbias_lib.nqm.gradient import fit_schedule

    h, s2 = (torch.tensor([[1.0], [0.2], [3.0]], dtype=torch.float64), torch.tensor([[2.0], [0.5], [1.0]],
                                                                                   dtype=torch.float64))
    start = (torch.ones(3, 1, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64))
    greedy = greedy_schedule(h, s2, *start, 4, momentum=False)
    fit = fit_schedule(h, s2, *start, 0.3 / h.expand(3, 4), steps=20, lr=0.01, parameterization="log",
                       bound=False, momentum=False)
    return plotting.theorem3_figure(h, s2, greedy, fit, ["tab:blue", "tab:orange", "tab:green"])


def _nqm_measurement():
    from shortbias_lib.nqm import prediction as npred

    m, info = _measurement()
    return npred.plot_measurement(m, info, npred.FLOOR * m["top_values"][0])


def _nqm_comparison():
    from shortbias_lib.nqm import prediction as npred

    horizons = [100, 1000, 5000, 20000]
    n = len(horizons)
    pred = {"log10_beta": np.linspace(-1, 1, n), "log10_alpha0": np.linspace(-2, -1, n),
            "final_loss": np.linspace(2.0, 1.0, n)}
    predictions = {floor: (None, None, pred) for floor in (npred.FLOOR, *npred.ALT_FLOORS)}
    rows = [{"beta": 1.0, "beta_low": 0.5, "beta_high": 2.0, "alpha0": 0.1, "alpha0_low": 0.05,
             "alpha0_high": 0.2} for _ in horizons]
    return npred.plot_comparison(horizons, npred.curves(predictions, pred), rows,
                                 np.linspace(2.0, 1.0, n), (-2.0, 2.3), (-3.0, -0.3))


def _explorer():
    from shortbias_lib.plots import explorer
    from shortbias_lib.nqm import horizon_bias

    kw = dict(kappa=1000.0, noise=1.0, horizon=20, lr=0.05, mu=0.9)
    return explorer.plot_explore(horizon_bias.explore(**kw, n=5, grid=3), explorer.title(**kw))


def _comparisons():
    from shortbias_lib.report import Comparison

    quantities = ["greedy/optimized loss ratio at the final step", "best beta, 20k-step horizon",
                  "SMD final learning rate over the hand-tuned rate", "a short one"]
    return [Comparison(chapter, quantity, ours=1.5 * (i + 1), paper=1.4 * (i + 1), source="x.npz",
                       kind="lower_bound" if i % 2 else "value", low=1.2 * (i + 1), high=1.8 * (i + 1))
            for i, (chapter, quantity) in enumerate(
                (c, q) for c in ("offline_mnist", "online_smd") for q in quantities)]


def _comparison_figure():
    from shortbias_lib import report

    return report.comparison_figure(_comparisons())


def _precision():
    from shortbias_lib.experiments.precision import figures as plot_precision, experiment as precision

    arrays, _ = precision.load_precision(precision.archive_path())
    return plot_precision.plot_relative_differences(arrays)


def _beyond_horizons():
    horizons = np.array([1, 10, 100, 1000])
    return horizons, np.logspace(0, -1, 4), np.logspace(-1, 0, 4), np.linspace(3, 1, 4), np.linspace(9, 1, 4)


def _beyond_horizon_bias():
    from shortbias_lib.experiments.beyond import figures as plot_beyond

    return plot_beyond.plot_horizon_bias(*_beyond_horizons(), 4.0, 1000)


def _beyond_decay_choices():
    from shortbias_lib.experiments.beyond import figures as plot_beyond

    horizons, _, _, _, cost = _beyond_horizons()
    mnist = dict(horizons=np.array([100.0, 1000.0, 5000.0]), alpha0=np.array([0.3, np.nan, 0.1]),
                 beta=np.array([2.0, np.nan, 0.5]), final=np.array([0.4, 0.3, 0.2]))
    runs = [dict(mnist, label="MNIST, paper's design (archived)"), dict(mnist, label="MNIST, live `quick` run")]
    return plot_beyond.plot_decay_choices(horizons, 1000, np.logspace(0, -1, 4), np.logspace(0.5, -0.5, 4), cost,
                                          runs)


def _beyond_greedy_maps():
    from shortbias_lib.experiments.beyond import figures as plot_beyond

    kappas, noises, gammas = [1.0, 10.0, 100.0, 1000.0], [0.0, 0.001, 0.1, 1.0], [0.0, 0.5, 1.0]
    ratio = 1 + np.arange(len(gammas) * len(kappas) * len(noises)).reshape(3, 4, 4) ** 1.5
    return plot_beyond.plot_greedy_maps(ratio, np.array(kappas), np.array(noises), np.array(gammas))


def _beyond_pes_quadratic():
    from shortbias_lib.experiments.beyond import figures as plot_beyond

    grid = np.linspace(-6, 0, 20)
    arrays = {"pes_grid": grid, "pes_exact_grad": -(grid + 3), "pes_trunc_grad": -(grid + 4), "pes_F": grid ** 2,
              "pes_check_theta": grid[::5], "pes_check_mean": -(grid[::5] + 3), "pes_check_se": np.full(4, 0.2),
              "pes_traj_truncated": np.linspace(-4.6, -4.2, 30)[:, None],
              "pes_traj_pes": np.linspace(-4.6, -3, 30)[:, None], "pes_opt": -3.0, "pes_trunc_fixed": -4.0}
    return plot_beyond.plot_pes_quadratic(arrays, 8)


def _beyond_pes_mnist():
    from shortbias_lib.experiments.beyond import figures as plot_beyond

    theta = np.log([[0.01, 0.5], [0.05, 2.0]])  # the quick and paper profiles' two checked points
    traj = np.linspace(theta[0], theta[0] + 0.5, 20)
    arrays = {"mnist_check_theta": theta, "mnist_check_exact": -theta, "mnist_check_trunc": -1.2 * theta,
              "mnist_check_pes_mean": -theta + 0.05, "mnist_check_pes_se": np.full((2, 2), 0.1),
              "mnist_traj_truncated": traj, "mnist_traj_pes": traj[::-1] * 0.9}
    return plot_beyond.plot_pes_mnist(arrays)


FIGURES = {
    "plotting.unrolled_sgd_graph": _unrolled_graph,
    "plotting.schedule_panels": _schedule_panels,
    "plotting.paper_figure1": _paper_figure1,
    "plotting.theorem1_figure": _theorem1_figure,
    "plotting.theorem3_figure": _theorem3_figure,
    "plotting.horizon_lr_curves": _horizon_lr_curves,
    "plotting.figure3_panels, noisy": functools.partial(_figure3_panels, 0),
    "plotting.figure3_panels, deterministic": functools.partial(_figure3_panels, 1),
    "plot_offline.plot_surfaces": _offline_surfaces,
    "plot_offline.plot_training_curves": _offline_training_curves,
    "plot_offline.plot_smd_losses": _offline_smd_losses,
    "plot_offline.plot_smd_states": _offline_smd_states,
    "plot_online.figure, one panel": _online_one_panel,
    "plot_online.figure, two panels": _online_two_panels,
    "nqm_prediction.plot_measurement": _nqm_measurement,
    "nqm_prediction.plot_comparison": _nqm_comparison,
    "explorer.plot_explore": _explorer,
    "report.comparison_figure": _comparison_figure,
    "plot_precision.plot_relative_differences": _precision,
    "plot_beyond.plot_horizon_bias": _beyond_horizon_bias,
    "plot_beyond.plot_decay_choices": _beyond_decay_choices,
    "plot_beyond.plot_greedy_maps": _beyond_greedy_maps,
    "plot_beyond.plot_pes_quadratic": _beyond_pes_quadratic,
    "plot_beyond.plot_pes_mnist": _beyond_pes_mnist,
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_library_figure_shows_its_text_at_9_pt_or_more(name):
    fig = FIGURES[name]()
    size, text = smallest_displayed_font_pt(fig, with_text=True)
    assert math.isfinite(size), f"{name}: no text at all"
    assert size >= MIN_DISPLAYED_PT, (
        f"{name}: {text!r} is shown at {size:.1f} pt (figure {fig.get_figwidth():.1f} in wide, "
        f"{plotting.natural_width_px(fig):.0f} px natural, column {plotting.COLUMN_PX} px)")


def test_figure6_learning_rate_panel_is_not_squashed_by_the_100_step_schedule():
    """The 100-step optimum's rate falls by tens of decades; the panel's lower edge stays within
    a few decades of the other schedules' lowest rates, and the 100-step schedule is named as leaving it."""
    from shortbias_lib.experiments.offline import figures as plot_offline

    arrays, config = _offline_archive()
    lows = sorted(float(np.nanmin(r)) for r in arrays["surface_curve_lr"])
    assert lows[0] < 1e-30 * lows[1]          # the case this guards against is in the archive
    fig = plot_offline.plot_training_curves(arrays, config)
    ax = [a for a in fig.axes if a.get_visible()][3]
    assert ax.get_ylabel().startswith("learning rate")
    lower = ax.get_ylim()[0]
    assert lows[1] * 1e-4 <= lower <= lows[1]
    floor, leaving = plot_offline.lr_panel_floor(arrays, config)
    assert floor == pytest.approx(lower) and [h for h, _ in leaving] == [int(config["horizons"][0])]


def test_figure5_plots_the_initial_effective_rate():
    """Figure 5's vertical axis is alpha_0 / (1 - mu), the paper's, not alpha_0."""
    from shortbias_lib.experiments.offline import figures as plot_offline

    arrays, config = _offline_archive()
    fig = plot_offline.plot_surfaces(arrays, config)
    ax = fig.axes[0]
    assert "effective" in ax.get_ylabel()
    expected = 10.0 ** np.array(config["log10_alpha0_range"]) / (1 - config["momentum"])
    np.testing.assert_allclose(ax.get_ylim(), expected, rtol=1e-12)

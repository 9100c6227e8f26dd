"""The drawing of the paper's Figure 4 (``plotting.unrolled_sgd_graph``): the graph it
draws has the nodes and edges of unrolled SGD, whatever the number of steps shown.
An independent count: every drawn step has five edges (minibatch, weights and
gradient into the update, and the learning rate into it), and the hypergradient
is one more edge back to alpha."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

from shortbias_lib.plots.common import unrolled_sgd_graph  # noqa: E402


def _texts(ax):
    return [t.get_text() for t in ax.texts]


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_unrolled_sgd_graph_has_one_learning_rate_feeding_every_step(steps):
    ax = unrolled_sgd_graph(steps)
    texts = _texts(ax)
    try:
        assert texts.count(r"$\alpha$") == 1, "one learning-rate node, shared by all steps"
        assert r"$\theta_{0}$" in texts and r"$\theta_{T}$" in texts and r"$L(\theta_T)$" in texts
        gradients = [t for t in texts if t.startswith("$g_{")]
        assert len(gradients) == steps
        arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
        red = [p for p in arrows if p.get_edgecolor()[:3] == matplotlib.colors.to_rgb("tab:red")]
        # alpha -> each update, plus the hypergradient back to alpha
        assert len(red) == steps + 1
        dotted = 2 if steps >= 2 else 0  # into and out of the ellipsis
        assert len(arrows) == 5 * steps + 1 + 1 + dotted  # + theta_T -> L
        if steps >= 2:
            assert r"$\theta_{T-1}$" in texts and r"$\cdots$" in texts
    finally:
        plt.close(ax.figure)


@pytest.mark.parametrize("steps", [0, -1, 1.5, True])
def test_unrolled_sgd_graph_rejects_a_bad_number_of_steps(steps):
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        unrolled_sgd_graph(steps)

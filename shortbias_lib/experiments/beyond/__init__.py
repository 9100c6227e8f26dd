"""Beyond the paper: the bias across horizons, its remedies, and PES against truncation.

- :mod:`.experiment`: the noisy-quadratic runs and :func:`run_beyond`;
- :mod:`.mnist`: truncated hypergradients against PES on MNIST;
- :mod:`.figures`: the chapter's figures, from a result.

Its public names are re-exported here.
"""

from .mnist import MNISTMetaTask, run_beyond_mnist
from .experiment import run_beyond, run_beyond_nqm
from .figures import (plot_horizon_bias, plot_decay_choices, plot_greedy_maps, plot_pes_quadratic,
                      plot_pes_mnist)

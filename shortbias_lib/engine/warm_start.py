"""The paper's MNIST network and its seeded warm start, for every experiment that starts from it.

:data:`PAPER_MLP` holds the settings (the offline experiment's configuration spreads them; the
precision measurement takes its network and warm start from them); :func:`seeded_warm_start`
draws the network and runs the warm start from a seed; :func:`warm_arrays` and
:func:`warm_state` store it in a result file and read it back."""

import torch

from .batches import StepBatches, derived_seed
from .models import mlp_apply, mlp_init
from .training import init_state, state_arrays, state_from_arrays, train

# The paper's (Section 3.2) and the authors' code's network, warm start and momentum.
PAPER_MLP = {
    "sizes": (784, 100, 100, 10),
    "init_std": 0.1,              # paper; the authors' code uses 0.05
    "momentum": 0.9,
    "batch_size": 100,
    "warm_steps": 50,
    "warm_lr": 0.1,
    "warm_momentum": 0.9,
    "convention": "paper",        # v <- mu v - alpha g, w <- w + v
    "dtype": "float32",
}


def warm_start(params, batches, steps=50, lr=0.1, momentum=0.9, convention="paper", apply=mlp_apply):
    """``steps`` of SGD with momentum at a constant rate; returns a state at schedule step 0.

    The velocity is kept (training continues), the step counter restarts so
    the decay schedule starts at ``t = 0``.
    """
    result = train(apply, params, batches, steps, lr, momentum, convention, raise_on_divergence=True)
    return init_state(result.state.params, result.state.velocity, step=0)


def seeded_warm_start(config, seed, images, labels, dtype=torch.float32, device=None):
    """The experiment's warm start from its seed: the MLP drawn with key ``(seed, 0)``, then
    :func:`warm_start` on minibatches of key ``(seed, 1)`` (``config`` gives the sizes)."""
    generator = torch.Generator().manual_seed(derived_seed(seed, 0))
    params = mlp_init(generator, tuple(config["sizes"]), config["init_std"], dtype, device)
    return warm_start(params, StepBatches(images, labels, config["batch_size"], derived_seed(seed, 1)),
                      config["warm_steps"], config["warm_lr"], config["warm_momentum"],
                      config["convention"])


def warm_arrays(state):
    """A warm start as result-file arrays ``warm_params_i``, ``warm_velocity_i``."""
    return state_arrays(state, "warm_params_", "warm_velocity_")


def warm_state(arrays, device=None):
    """The warm start stored by :func:`warm_arrays`, as a :class:`~shortbias_lib.engine.training.TrainState`."""
    return state_from_arrays(arrays, "warm_params_", "warm_velocity_", device=device)

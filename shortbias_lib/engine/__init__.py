"""The training and meta-optimization engine that every experiment uses.

- :mod:`.models`: the paper's networks as pure functions of a parameter tuple;
- :mod:`.training`: SGD with momentum (both conventions), single and batched runs, and a
  state as result-file arrays and back;
- :mod:`.batches`: minibatch streams with saved state, and seeds derived from tuples of keys;
- :mod:`.schedules`: learning-rate schedules ``t -> lr``;
- :mod:`.warm_start`: the paper's MNIST network and its seeded warm start;
- :mod:`.hyperparams`: the hyperparameters SMD learns, and their coordinates;
- :mod:`.meta_optim`: meta-optimizers (Adam, momentum) on the learned hyperparameters;
- :mod:`.hvp`: gradients and Hessian-vector products;
- :mod:`.hypergrad`: exact forward-mode hypergradients and stochastic meta-descent (Algorithm 1);
- :mod:`.batched_smd`: S SMD runs advanced together as one batched computation;
- :mod:`.batched_offline_smd`: the offline SMD's starting points of one horizon advanced together;
- :mod:`.reference`: independent references for hypergradients (finite differences, reverse mode);
- :mod:`.measure`: what hypergradients cost (memory and time), for the book and the benchmarks.

The engine imports no experiment. Its modules' public names are re-exported here.
"""

from .models import (MNIST_SIZES, CIFAR_CHANNELS, mlp_init, mlp_apply, cnn_init, cnn_apply, loss_fn,
                     error_rate, mean_loss, batched_loss, MODELS)
from .training import (CONVENTIONS, LOSS_LIMIT, diverged, check_convention, check_lr, check_momentum,
                       check_steps, TrainState, init_state, state_arrays, state_from_arrays, momentum_step,
                       TrainResult, train, BatchedResult, stack_params, train_batched)
from .batches import derived_seed, BatchSampler, StepBatches
from .schedules import Schedule, Constant, InverseTime, ExponentialDecay
from .warm_start import PAPER_MLP, seeded_warm_start, warm_arrays, warm_state
from .hyperparams import LEARNABLE, SPACES, BOUNDS, LOG_NAMES, Hyperparameters
from .meta_optim import Adam, Momentum, META_OPTIMIZERS, make_meta_optimizer, adam_update
from .hvp import autograd_grad, autograd_grad_hvp, mlp_grad_hvp, GRAD_HVP, mlp_grad_hvp_stacked
from .hypergrad import (Hypergradient, check_batches, CHECK_EVERY, hypergradient, paper_tangent_step,
                        heavy_ball_tangent_step, TANGENT_STEPS, SMDResult, SMDHistory, ON_DIVERGENCE,
                        lookahead_batches, smd)
from .batched_smd import (LEARN, log_space_bounds, rates, lookahead, lookahead_step, hypergradients, MetaSettings,
                          meta_step, compiled_meta_step, meta_step_for, draw_meta_batches, MetaBatches,
                          BatchedAdamState, BatchedSMDResult, smd_batched, stack_runs)
from .batched_offline_smd import schedule_bounds, schedule_rates, offline_meta_step, smd_trajectories_batched
from .reference import meta_loss, finite_difference, reverse_hypergradient, compare_hypergradients
from .measure import peak_rss_mib, memory_vs_horizon, step_costs

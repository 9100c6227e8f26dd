"""The noisy quadratic model of Section 2, and what the book builds on it.

- :mod:`.problem`: problems, schedules and their validation;
- :mod:`.dynamics`: exact dynamics (Theorem 1) and greedy schedules (Theorems 2-3);
- :mod:`.adjoint`: the exact gradient of the final loss (a NumPy adjoint);
- :mod:`.gradient`: that gradient checked, and the Adam fit of a schedule;
- :mod:`.fixed`: exact fixed schedules and the global best one;
- :mod:`.fit`: converged L-BFGS fits;
- :mod:`.montecarlo`: simulation of SGD with sampled minima, to check Theorem 1;
- :mod:`.horizon_bias`: the bias across horizons and its remedies;
- :mod:`.pes`: truncated hypergradients against Persistent Evolution Strategies;
- :mod:`.spectrum`: a network's local noisy quadratic (Hessian spectrum, gradient noise);
- :mod:`.prediction`: the noisy quadratic measured at a network's warm start, and its schedules;
- :mod:`.symbolic`: SymPy derivations of Theorems 1-4 (import it as a module: it loads SymPy).

Imports the engine, no experiment. The public names of every module but :mod:`.symbolic` are
re-exported here, except those that name a module (such as :func:`.dynamics.dynamics`).
"""

from .problem import (DTYPE, PAPER_DIM, PAPER_HORIZON, DEFAULT_KAPPA, DEFAULT_C0, check_problem,
                      check_schedule, broadcast_shape, chebyshev_spectrum, Problem, make_problem,
                      constant_schedule, decayed_schedule, curvature_group_losses)
from .dynamics import (Moments, initial_moments, theorem1_step, theorem1_trajectory, second_moment_step,
                       bounded_scale, DEGENERATE, greedy_coefficients, one_step_loss, brute_force_greedy,
                       Schedule, greedy_schedule)
from .gradient import final_loss_grad, Fit, fit_schedule
from .fixed import fixed_final_loss, FixedSchedule, FIXED_SEARCH, best_fixed
from .fit import (LbfgsResult, lbfgs, ConvergedFit, SHARPNESS, COLLAPSE, KICKS, EARLY_TOL, FitSettings,
                  fit_lbfgs)
from .montecarlo import MonteCarlo, monte_carlo
from .horizon_bias import (precondition, noisy_problem, DIVERGED, mark_diverged, decay_schedule,
                           decay_horizon_bias, greedy_ratio_map, EXPLORER_DEFAULTS, explore)
from .pes import (schedule_from_theta, MetaTask, truncated_window, perturbations, pes_window,
                  truncated_estimates, pes_estimates, meta_optimize, fixed_point_1d)
from .spectrum import (flatten, unflatten, hvp_operator, full_gradient, lanczos, ritz, top_eigenpairs, slq,
                       trace_estimate, spectral_measure, per_example_projections, noise_variance,
                       noise_correlation, total_noise)
from .prediction import (Budget, SIZES, FLOOR, ALT_FLOORS, subsample, predict_all, later_points,
                         plot_measurement, curves, plot_comparison, measure, measure_operator, bulk_bins,
                         build_nqm, nqm_from_quadratic, horizon_losses, schedule_grid, predict)

"""Offline meta-optimization of an inverse-time decay schedule on MNIST (Section 3.2, Figures 5-6).

- :mod:`.config`: the settings every profile shares, each profile's sizes, their validation;
- :mod:`.design`: the sampled schedules (uniform or shifted Halton) and the refinement boxes;
- :mod:`.training`: batched runs of many schedules (the sweep, Figure 6's curves);
- :mod:`.smd`: stochastic meta-descent on the schedule (Algorithm 1);
- :mod:`.surface`: what the samples say (smoothed surfaces, optima, the claims);
- :mod:`.experiment`: the stages, checkpointed, and :func:`run_offline`;
- :mod:`.figures`: Figures 5 and 6 and the tables, from a result.

Its public names are re-exported here.
"""

from .config import (CHAPTER, PAPER_HORIZONS, BASE, SIZES, EXTRA_PROFILES, ARCHIVE_DIR, ARCHIVE_COMMAND,
                     ARCHIVE_GPU_COMMANDS, config_for, check_config)
from .design import SAMPLINGS, halton, sample_hyperparameters, refinement_samples
from .training import horizon_objectives, train_curves
from .smd import (smd_hyperparameters, smd_trajectory, checkpointing, smd_log10, smd_trajectories, SMDState,
                  smd_state)
from .surface import (capped_log_loss, smooth_surface, surface_grids, sample_run_steps, surface_minimum,
                      surface_optima, bootstrap_optima, best_per_horizon, claims, BANDWIDTH_SCALES,
                      CLAIM_BOUNDS, ClaimBand, k_best_ratios, claim_bands, band_verdict, summary_rows,
                      edge_sentence, add_summary)
from .experiment import run_experiment, run_offline, load_offline, refresh_summary, result_path, archive_path
from .figures import (settings_table, claims_table, smd_table, summary_table, smd_ends_near_optimum,
                      smd_near_optimum, effective_factor, plot_surfaces, LR_PANEL_DECADES, lr_panel_floor,
                      plot_training_curves, plot_smd_states, plot_smd_losses)

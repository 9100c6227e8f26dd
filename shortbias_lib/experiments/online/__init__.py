"""Online stochastic meta-descent on MNIST and CIFAR-10 (Section 3.3, Figures 7-8).

- :mod:`.loop`: online SMD while a network trains, with its checkpoints;
- :mod:`.record`: what a run records, and where it stands while it trains;
- :mod:`.batched`: S runs advanced together;
- :mod:`.experiment`: the runs of each data set, their files, and :func:`run_online`;
- :mod:`.claims`: Section 3.3's claims decided from the runs' numbers;
- :mod:`.figures`: tables and figures of the runs against the baseline.

Its public names are re-exported here.
"""

from .loop import MODES, META_BATCHES, OnlineSettings, Checkpointing, online_run
from .record import OnlineRun, OnlineProgress
from .batched import online_batched_runs
from .experiment import (DATASET_MODELS, CHAPTER, PAPER_INIT_LRS, PAPER_BASELINE_LR, PAPER_SIZES, SIZES,
                         EXTRA_PROFILES, ARCHIVE_DIR, ARCHIVE_COMMAND, POLL_SECONDS, TrainingChoices,
                         run_key, checkpoint_path, archive_plan, archived_runs, earlier_archive_path,
                         EARLIER_ARCHIVE_OVERRIDES, runs_from_arrays, run_dataset, gathered_expected,
                         run_online)
from .claims import (ALIKE_SPREAD, SETTLED_FRACTION, SMALL_FACTOR, SPIKE_FACTOR, Claims, settled_rate,
                     momentum_pinned, instability, decide, verdict, claims_rows, comparison_table)
from .figures import summary_rows, summary_table, plot_runs, figure, select

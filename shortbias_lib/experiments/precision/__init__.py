"""Precision and sensitivity of long-horizon hypergradients (float32 against float64, perturbed starts).

- :mod:`.variants`: the variants of the measurement and the computations they run;
- :mod:`.analysis`: differences, summary, verdicts and their words;
- :mod:`.experiment`: the configuration, the checkpointed run and :func:`run_precision`;
- :mod:`.figures`: the figure of the relative differences.

Its public names are re-exported here.
"""

from .variants import KINDS, perturb, start_state, measure, rounded_weights_run
from .analysis import (AGREE_TOL, SPREAD_FACTOR, FLOAT32_REFERENCE, COMPONENTS, reference_rows,
                       relative_differences, summary, verdicts, headline, conclusion, table_rows,
                       markdown_table)
from .experiment import (BASE, SIZES, EXTRA_PROFILES, ARCHIVE_COMMAND, config_for, check_config,
                         run_experiment, run_precision, load_precision, result_path, archive_path)
from .figures import plot_relative_differences

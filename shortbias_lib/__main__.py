"""Run the book's experiments from the shell, with the same code as the notebooks.

    python -m shortbias_lib --list
    python -m shortbias_lib NAME [--profile quick] [--device auto] [--seed 0]
                                 [--data-root DIR] [--results DIR] [--no-resume] [--debug]
                                 [--max-minutes M]

Every error is one line on stderr: exit status 2 for bad input, data or result files
(``ShortbiasError``, ``ValueError``), 1 for the system (``OSError``: full disk,
unreadable file) and for any other error (a bug: the line names its type and the command
to rerun with ``--debug``, which shows the traceback), 130 for Ctrl-C and 143 for
``SIGTERM`` (``kill``, a batch system's stop), which stops the run as Ctrl-C does (the run
resumes with the same command). With ``--max-minutes M`` a run stops cleanly at its next
checkpoint once M minutes have passed (:func:`~shortbias_lib.runs.time_budget`), keeping its
partial checkpoint, and exits with status 75 (``EX_TEMPFAIL``: not finished, run the same command
again to resume); 0 means finished. The online and offline experiments checkpoint as they go;
another experiment is not stopped once it has started.
"""

import argparse
import shlex
import signal
import sys
import threading
from typing import NamedTuple

from .experiments.beyond import experiment as beyond
from . import data
from .experiments import figure3 as noisy_quadratic
from .experiments.offline import experiment as offline, config as offline_config
from .experiments.online import experiment as online
from .experiments.precision import experiment as precision
from .errors import ShortbiasError, TimeBudgetSpent
from .profiles import DEFAULT_PROFILE, check_profile

PROG = "shortbias_lib"
EXIT_OUT_OF_TIME = 75  # sysexits' EX_TEMPFAIL: stopped for time, resumable


class Experiment(NamedTuple):
    """One command of the CLI: its function (the experiment contract of
    :mod:`shortbias_lib.runs`: ``run(profile, *, device, seed, data_root, results, resume)``
    returning a :class:`~shortbias_lib.runs.Result`), a one-line description, and the
    profiles it has beyond smoke, quick and paper."""

    run: object
    description: str
    extra_profiles: tuple = ()


EXPERIMENTS = {
    "data": Experiment(data.run_check, "load MNIST and CIFAR-10 and report their sources"),
    "figure3": Experiment(noisy_quadratic.run_figure3,
                          "greedy, fixed and optimized schedules on the noisy quadratic (Figure 3)"),
    "offline_mnist": Experiment(offline.run_offline, "offline meta-optimization on MNIST (Figures 5, 6)",
                                offline_config.EXTRA_PROFILES),
    "hypergrad_precision": Experiment(precision.run_precision,
                                      "float32 vs float64 and perturbed starts of long-horizon hypergradients",
                                      precision.EXTRA_PROFILES),
    "online": Experiment(online.run_online, "online SMD on MNIST and CIFAR-10 (Figures 7, 8)",
                         online.EXTRA_PROFILES),
    "beyond": Experiment(beyond.run_beyond, "the bias across horizons, remedies, and PES (beyond the paper)"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, like every other error
        self.exit(2, f"{PROG}: error: {message} (see python -m shortbias_lib --help)\n")


def _one_line(text):
    return " ".join(str(text).split())


def _describe_os_error(error):
    what = error.strerror or str(error)
    where = [str(name) for name in (error.filename, error.filename2) if name is not None]
    return _one_line(f"{what}: {' -> '.join(where)}" if where else what)


class Terminated(KeyboardInterrupt):
    """``SIGTERM``, raised where the run is, so that it stops as on Ctrl-C: locks released,
    temporary files removed, checkpoints kept."""


def _terminate(signum, frame):
    raise Terminated


def _parser():
    parser = _Parser(prog="python -m shortbias_lib", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", help="experiment name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the experiments")
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help="smoke, quick or paper (offline_mnist, hypergrad_precision and online also: archive; "
                             "offline_mnist also: archive_gpu)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None, help="data folder (default: $SHORTBIAS_DATA)")
    parser.add_argument("--results", default=None, help="results folder (default: results/)")
    parser.add_argument("--no-resume", action="store_true", help="recompute even if results exist")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("--max-minutes", type=float, default=None, metavar="M",
                        help="stop at the next checkpoint once M minutes have passed "
                             f"(exit status {EXIT_OUT_OF_TIME}; the same command resumes)")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    if args.list or not args.experiment:
        for name, experiment in EXPERIMENTS.items():
            print(f"{name:20s} {experiment.description}")
        return 0
    on_main_thread = threading.current_thread() is threading.main_thread()  # where handlers can be set
    previous = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    try:
        if args.experiment not in EXPERIMENTS:
            raise ValueError(f"experiment must be one of {', '.join(EXPERIMENTS)}; "
                             f"got {args.experiment!r}")
        from .runs import check_seed, results_dir, time_budget

        seed = check_seed(args.seed)
        experiment = EXPERIMENTS[args.experiment]
        check_profile(args.profile, extra=experiment.extra_profiles)
        if args.experiment != "data":  # fail now, not after a long computation
            results_dir(args.results, writable=True)
        with time_budget(args.max_minutes):
            experiment.run(args.profile, device=args.device, seed=seed, data_root=args.data_root,
                           results=args.results, resume=not args.no_resume)
    except TimeBudgetSpent as stop:
        print(f"{PROG}: {_one_line(stop)}", file=sys.stderr)
        return EXIT_OUT_OF_TIME
    except KeyboardInterrupt as stop:
        what, code = ("terminated (SIGTERM)", 143) if isinstance(stop, Terminated) else ("interrupted", 130)
        print(f"{PROG}: {what}; finished results and checkpoints are kept: run the same "
              "command again (without --no-resume) to resume", file=sys.stderr)
        return code
    except Exception as error:  # noqa: BLE001 - every error is one line unless --debug
        if args.debug:
            raise
        if isinstance(error, (ShortbiasError, ValueError)):
            print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
            return 2
        if isinstance(error, OSError):
            print(f"{PROG}: error: {_describe_os_error(error)}", file=sys.stderr)
            return 1
        rerun = shlex.join(["python", "-m", PROG, *argv, "--debug"])
        print(f"{PROG}: unexpected error {type(error).__name__}: {_one_line(error)[:300]} "
              f"(to see the traceback: {rerun})", file=sys.stderr)
        return 1
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())

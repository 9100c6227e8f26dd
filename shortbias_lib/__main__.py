"""Run the book's experiments from the shell, with the same code as the notebooks.

    python -m shortbias_lib --list
    python -m shortbias_lib NAME [--profile quick] [--device auto] [--seed 0]
                                 [--data-root DIR] [--results DIR] [--no-resume]
"""

import argparse
import importlib
import sys

from .errors import ShortbiasError
from .profiles import DEFAULT_PROFILE, check_profile

# name -> (module, function, one-line description). Each function has the signature
# run(profile, *, device, seed, data_root, results, resume) described in CONTRIBUTING.md.
EXPERIMENTS = {
    "data": ("shortbias_lib.data", "run_check", "load MNIST and CIFAR-10 and report their sources"),
    "figure3": ("shortbias_lib.noisy_quadratic", "run_figure3",
                "greedy, fixed and optimized schedules on the noisy quadratic (Figure 3)"),
    "offline_mnist": ("shortbias_lib.offline", "run_offline",
                      "offline meta-optimization on MNIST (Figures 5, 6)"),
    "online": ("shortbias_lib.online", "run_online",
               "online SMD on MNIST and CIFAR-10 (Figures 7, 8)"),
    "beyond": ("shortbias_lib.beyond", "run_beyond",
               "the bias across horizons, remedies, and PES (beyond the paper)"),
}


def _parser():
    parser = argparse.ArgumentParser(prog="python -m shortbias_lib", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", help="experiment name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the experiments")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="smoke, quick or paper (offline_mnist also: archive)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None, help="data folder (default: $SHORTBIAS_DATA)")
    parser.add_argument("--results", default=None, help="results folder (default: results/)")
    parser.add_argument("--no-resume", action="store_true", help="recompute even if results exist")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.list or not args.experiment:
        for name, (_, _, what) in EXPERIMENTS.items():
            print(f"{name:16s} {what}")
        return 0
    try:
        if args.experiment not in EXPERIMENTS:
            raise ValueError(f"experiment must be one of {', '.join(EXPERIMENTS)}; "
                             f"got {args.experiment!r}")
        module, function, _ = EXPERIMENTS[args.experiment]
        module = importlib.import_module(module)
        check_profile(args.profile, extra=getattr(module, "EXTRA_PROFILES", ()))
        run = getattr(module, function)
        run(args.profile, device=args.device, seed=args.seed, data_root=args.data_root,
            results=args.results, resume=not args.no_resume)
    except (ShortbiasError, ValueError) as error:
        print(f"shortbias_lib: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

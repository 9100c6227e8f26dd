"""Paper-scale online archives in time-bounded legs on a lent GPU machine (bench/README.md).

Four subcommands (``bash bench/gpu_archive_legs.sh`` runs ``leg`` then ``pack`` there):

* ``prepare`` (here, once): the data into ``gpu_data/``, which ``.git/info/exclude`` keeps out
  of git: MNIST's four IDX files gzipped (about 11 MB) and the whole CIFAR-10 JPEG copy as one
  ``cifar10-jpeg.tar.gz`` (about 20 MB: its 60,000 small files share their JPEG headers, which
  compress; 57 MB unpacked). Prints what will travel against the 64 MiB limit.
* ``leg`` (there): unpack the data to a temporary root, then, inside one time budget
  (:func:`shortbias_lib.runs.time_budget`, each run stops at its next checkpoint once it is
  spent), (1) the ``archive`` profile's MNIST runs still missing from ``archive/checkpoints``,
  resuming the committed partial checkpoints (the CLI's ``online --profile archive --results
  archive``), then (2) the ``paper`` profile's CIFAR-10 runs (Figures 7 and 8) into
  ``archive/gpu_cifar10``, with a checkpoint every :data:`CIFAR_CHECKPOINT_EVERY` steps instead
  of 1,000 (a CIFAR-10 adaptation takes seconds on the GPU; its configuration records this),
  as far as the budget allows. Writes ``legs.json`` (what each part reached) to ``--out``.
* ``pack`` (there, after the leg, even one killed by its timeout): every run file and partial
  checkpoint written since the leg began, in one ``archive_legs.tar`` under ``--out``
  (the device tool returns at most 8 files).
* ``unpack`` (here): bring a returned ``archive_legs.tar`` into the archive: a finished run is
  taken unless one is already here; a partial checkpoint only if no finished run is here and it
  is further along than the partial here; each file is read with
  :func:`~shortbias_lib.runs.load_result` (integrity) first, and a run whose lock a process holds
  here (a CPU copy computing it) is left alone.
"""

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the device machine runs the tree without installing it

from shortbias_lib import __main__ as cli  # noqa: E402
from shortbias_lib.experiments.online import experiment as online  # noqa: E402
from shortbias_lib import runs  # noqa: E402
from shortbias_lib.errors import ResultFileError, ResultLockedError, TimeBudgetSpent  # noqa: E402
from shortbias_lib.locks import run_lock  # noqa: E402

DATA = REPO / "gpu_data"
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_TAR = "cifar10-jpeg.tar.gz"
MNIST_RESULTS = "archive"                 # the online archive's per-run files: archive/checkpoints
CIFAR_RESULTS = "archive/gpu_cifar10"     # the CIFAR-10 runs' files: archive/gpu_cifar10/checkpoints
CIFAR_CHECKPOINT_EVERY = 100
PACKED = "archive_legs.tar"
_SAFE = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # tarfile's safe extraction where it has one
CARRY_LIMIT = 64 * 2 ** 20


def prepare(source, folder=DATA, per_class=None):
    """Fill ``folder`` from the data root ``source`` (MNIST/raw, cifar10-jpeg/); returns its size in
    bytes. ``per_class`` keeps the first images of each CIFAR-10 class folder only (tests)."""
    source, folder = Path(source), Path(folder)
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        with open(source / "MNIST" / "raw" / name, "rb") as src, gzip.open(raw / f"{name}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    with tarfile.open(folder / CIFAR_TAR, "w:gz") as tar:
        for path in sorted((source / "cifar10-jpeg").glob("*/*")):
            for image in sorted(path.glob("*.jpg"))[:per_class]:
                tar.add(image, arcname=str(image.relative_to(source)))
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def unpack_data(folder, root):
    """A data root in ``root`` holding what ``folder`` carries (MNIST unzipped, CIFAR-10 untarred)."""
    folder, root = Path(folder), Path(root)
    raw = folder / "MNIST" / "raw"
    if raw.is_dir():
        (root / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
        for name in MNIST_FILES:
            with gzip.open(raw / f"{name}.gz", "rb") as src, open(root / "MNIST" / "raw" / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    if (folder / CIFAR_TAR).exists():
        with tarfile.open(folder / CIFAR_TAR, "r:gz") as tar:
            tar.extractall(root, **_SAFE)
    return root


def _mnist_part(device, data_root, minutes, profile, root):
    """The online archive's MNIST runs (the CLI's own command, resuming its partials); its exit status."""
    return cli.main(["online", "--profile", profile, "--results", str(Path(root) / MNIST_RESULTS),
                     "--device", device, "--data-root", str(data_root), "--max-minutes", f"{minutes:.6g}"])


def _cifar_part(device, data_root, minutes, profile, root):
    """The ``profile``'s CIFAR-10 runs into :data:`CIFAR_RESULTS`; True when all are finished."""
    try:
        with runs.time_budget(minutes):
            online.run_dataset("cifar10", profile, device=device, data_root=data_root,
                               results=Path(root) / CIFAR_RESULTS, show_progress=False,
                               overrides={"checkpoint_every": CIFAR_CHECKPOINT_EVERY})
        return True
    except TimeBudgetSpent as stop:
        print(f"cifar10: {stop}", file=sys.stderr)
        return False


def leg(out, minutes, device="cuda", data_folder=DATA, *, mnist_profile="archive", cifar_profile="paper",
        root=REPO):
    """One leg in the repository ``root``: the MNIST archive's runs (``mnist_profile``; skipped if
    ``None``), then once they are finished CIFAR-10's, within ``minutes`` in all. Returns 0 when
    everything is finished, else :data:`shortbias_lib.__main__.EXIT_OUT_OF_TIME`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    record = {"started_utc": runs.utc_now(), "minutes": minutes, "device": device, "commit": runs.git_commit()}
    with tempfile.TemporaryDirectory(prefix="shortbias_data_") as tmp:
        data_root = unpack_data(data_folder, tmp)
        if mnist_profile is not None:
            record["mnist_exit_status"] = _mnist_part(device, data_root, minutes, mnist_profile, root)
        left = minutes - (time.monotonic() - started) / 60.0
        record["cifar10_done"] = False
        if record.get("mnist_exit_status", 0) == 0 and left > 0 and (Path(data_root) / "cifar10-jpeg").is_dir():
            record["cifar10_done"] = _cifar_part(device, data_root, left, cifar_profile, root)
    record["runs"] = [line for folder in (MNIST_RESULTS, CIFAR_RESULTS)
                      for line in _progress(Path(root) / folder / "checkpoints")]
    record["seconds"] = time.monotonic() - started
    (out / "legs.json").write_text(json.dumps(record, indent=1, default=str))
    print("\n".join(record["runs"]))
    if record.get("mnist_exit_status", 0) not in (0, cli.EXIT_OUT_OF_TIME):
        return record["mnist_exit_status"]  # an error, said on stderr by the CLI
    return 0 if record["cifar10_done"] else cli.EXIT_OUT_OF_TIME


def _progress(folder):
    """One line per run file in ``folder``: finished, or the step its partial checkpoint reached."""
    lines = []
    for path in sorted(Path(folder).glob("*.npz")):
        if path.name.endswith(".partial.npz"):
            lines.append(f"{path.name}: partial at step {int(runs.load_result(path)[0]['t'])}")
        else:
            lines.append(f"{path.name}: finished")
    return lines


def pack(out, since, root=REPO):
    """Tar every ``.npz`` of the archive's ``checkpoints/`` folders modified after the time ``since``
    (seconds since the epoch) into ``out/archive_legs.tar``; returns the names packed."""
    paths = [path for folder in (MNIST_RESULTS, CIFAR_RESULTS)
             for path in sorted((Path(root) / folder / "checkpoints").glob("*.npz")) if path.stat().st_mtime > since]
    Path(out).mkdir(parents=True, exist_ok=True)
    with tarfile.open(Path(out) / PACKED, "w") as tar:
        for path in paths:
            tar.add(path, arcname=str(path.relative_to(root)))
    return [str(path.relative_to(root)) for path in paths]


def _step(path):
    return int(runs.load_result(path)[0]["t"])


def unpack(packed, repo=REPO):
    """Bring the files of a returned ``archive_legs.tar`` into ``repo``'s archive (see the module
    docstring); returns ``{name: what was done}``."""
    done = {}
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(packed) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        for member in members:
            name = Path(member.name)
            if name.is_absolute() or ".." in name.parts or name.parts[0] != "archive" or name.suffix != ".npz":
                raise ValueError(f"{packed} holds {member.name}, which is not an archive run file")
        tar.extractall(tmp, members=members, **_SAFE)
        for member in members:
            new, target = Path(tmp) / member.name, Path(repo) / member.name
            try:
                runs.load_result(new)
            except ResultFileError as error:
                done[member.name] = f"skipped: {error}"
                continue
            is_partial = target.name.endswith(".partial.npz")
            finished = target.with_name(target.name.replace(".partial.npz", ".npz")) if is_partial else target
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with run_lock(finished):
                    if finished.exists():
                        done[member.name] = "kept the finished run here"
                        continue
                    if is_partial and target.exists() and _step(target) >= _step(new):
                        done[member.name] = f"kept the partial here (step {_step(target)} >= {_step(new)})"
                        continue
                    shutil.copyfile(new, target)
                    if not is_partial:
                        runs.partial_path(target).unlink(missing_ok=True)
                    done[member.name] = "taken" + (f" (step {_step(target)})" if is_partial else "")
            except ResultLockedError:
                done[member.name] = "skipped: a process here is computing this run"
    return done


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="here: the data into gpu_data/")
    p.add_argument("--data-root", required=True, help="folder with MNIST/raw and cifar10-jpeg/")
    p = sub.add_parser("leg", help="there: one time-bounded leg")
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=4.5,
                   help="budget; each run stops at its next checkpoint after it (default 4.5)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--data", default=str(DATA), help="the carried data folder (default gpu_data/)")
    p.add_argument("--mnist-profile", default="archive", help="profile of the MNIST runs (tests: smoke)")
    p.add_argument("--cifar-profile", default="paper", help="profile of the CIFAR-10 runs (tests: smoke)")
    p.add_argument("--no-mnist", action="store_true", help="skip the MNIST archive runs")
    p = sub.add_parser("pack", help="there: the files written since --since into one tar")
    p.add_argument("--out", required=True)
    p.add_argument("--since", type=float, required=True, help="seconds since the epoch (date +%%s)")
    p = sub.add_parser("unpack", help="here: a returned archive_legs.tar into archive/")
    p.add_argument("tar")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        size = prepare(args.data_root)
        tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
        checkout = sum((REPO / name).stat().st_size for name in tracked.decode().split("\0")
                       if name and (REPO / name).is_file())
        total = size + checkout
        print(f"gpu_data/: {size / 2 ** 20:.1f} MiB; tracked files {checkout / 2 ** 20:.1f} MiB; "
              f"together {total / 2 ** 20:.1f} MiB of the {CARRY_LIMIT / 2 ** 20:.0f} MiB that travel")
        return 0 if total < CARRY_LIMIT else 1
    if args.command == "leg":
        return leg(args.out, args.minutes, args.device, args.data, cifar_profile=args.cifar_profile,
                   mnist_profile=None if args.no_mnist else args.mnist_profile)
    if args.command == "pack":
        for name in pack(args.out, args.since):
            print(f"packed {name}")
        return 0
    for name, what in unpack(args.tar).items():
        print(f"{name}: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

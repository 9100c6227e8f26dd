"""Running experiments: device choice, provenance, atomic result files, progress.

Every result file is a NumPy ``.npz`` archive holding the arrays of a run
plus one JSON string, ``meta``, with its provenance (git commit, profile,
device, seed, time, library versions) and its configuration. Files are
written to a temporary name and renamed, so a reader never sees half a
file; a run that finds a finished file with the same configuration reuses
it, and long runs checkpoint partial results the same way to resume.
"""

import datetime
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device="auto"):
    """Return a ``torch.device``: CUDA when asked for or when ``auto`` finds it."""
    import torch

    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch finds no CUDA device; "
                         "use device='cpu' or 'auto'")
    return torch.device(device)


def results_dir(override=None):
    """Folder for result files: ``override``, else ``$SHORTBIAS_RESULTS``, else ``results/``."""
    path = Path(override or os.environ.get("SHORTBIAS_RESULTS") or REPO_ROOT / "results")
    path.mkdir(parents=True, exist_ok=True)
    return path


def git_commit():
    """The repository's current commit (with ``-dirty`` if the tree has changes)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def utc_now():
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def provenance(profile, device, seed, **config):
    """Metadata recorded with every result: what produced it, where and when."""
    import torch

    device_name = str(device)
    if device_name.startswith("cuda") and torch.cuda.is_available():
        device_name += f" ({torch.cuda.get_device_name()})"
    return {
        "profile": profile,
        "device": device_name,
        "seed": seed,
        "git_commit": git_commit(),
        "time_utc": utc_now(),
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "config": config,
    }


def save_result(path, arrays, meta):
    """Write ``arrays`` (name -> array) and ``meta`` (JSON-able) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {name: np.asarray(value) for name, value in arrays.items()}
    if "meta" in payload:
        raise ValueError("arrays must not contain the reserved name 'meta'")
    payload["meta"] = np.array(json.dumps(meta, sort_keys=True, default=str))
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def load_result(path):
    """Return ``(arrays, meta)`` from a file written by :func:`save_result`."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files if name != "meta"}
        meta = json.loads(str(archive["meta"]))
    return arrays, meta


def load_matching(path, config):
    """Load ``path`` if it exists and was made with ``config``; else return ``None``.

    ``config`` is compared after a JSON round trip, so tuples and lists match.
    """
    path = Path(path)
    if not path.exists():
        return None
    arrays, meta = load_result(path)
    wanted = json.loads(json.dumps(config, sort_keys=True, default=str))
    return (arrays, meta) if meta.get("config") == wanted else None


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on a terminal; silent elsewhere (notebooks, CI logs)."""
    kwargs.setdefault("disable", None)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)

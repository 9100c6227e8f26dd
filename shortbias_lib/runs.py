"""Running experiments: device choice (and tensors as NumPy arrays), provenance, atomic result files, and the
contract every experiment follows (:func:`run_or_resume` returning a :class:`Result`).

Every result file is a NumPy ``.npz`` archive holding the arrays of a run
plus one JSON string, ``meta``, with its provenance (git commit, profile,
device, seed, time, library versions) and its configuration. Files are
written to a temporary name and renamed, so a reader never sees half a
file; a run that finds a finished file with the same configuration reuses
it, and long runs checkpoint partial results the same way to resume.

Integrity: a file also holds a manifest of its arrays' names, shapes, dtypes
and SHA-256 digests of their bytes, checked when it is read, so a damaged or
hand-edited file (even one value changed) gives a one-line
:class:`~shortbias_lib.errors.ResultFileError` naming it and the array (never a
traceback, never reused, never silently replaced either: ``--no-resume``
recomputes it). Files written before digests were recorded (the committed
``archive/``) have none to check. Result files are named by experiment, profile
and seed (:func:`result_path`); a run holds :func:`~shortbias_lib.locks.run_lock` on its
file while it computes, so two runs of one configuration never mix; seeds are
checked by :func:`check_seed`.

Time-bounded legs: inside :func:`time_budget` (the CLI's ``--max-minutes``) a long run
stops cleanly at its next checkpoint once the budget is spent, raising
:class:`~shortbias_lib.errors.TimeBudgetSpent`; its partial checkpoint is kept and the same
command resumes it, as after Ctrl-C, but without losing the steps since the last checkpoint.

The experiment contract: every experiment is a function
``run(profile, *, device, seed, data_root, results, resume)`` that declares its
sizes per profile (:func:`shortbias_lib.profiles.pick`), resolves its device once
(:func:`resolve_device`), goes through :func:`run_or_resume`, and returns a
:class:`Result`: the arrays and the provenance of the file it wrote or reused.
"""

import contextlib
import datetime
import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import ResultFileError, ResultLockedError, ResultsFolderError, ShortbiasError, TimeBudgetSpent
from .locks import check_writable, host_tag, remove_stale_temp_files, run_lock
from .progress import progress

REPO_ROOT = Path(__file__).resolve().parent.parent
DEVICES = ("auto", "cpu", "cuda")
SEED_LIMIT = 2 ** 32
MANIFEST = "__manifest__"  # reserved entry: {name: [shape, dtype, sha256]} of the arrays
RESERVED = ("meta", MANIFEST)
RECOMPUTE_HINT = "rerun with --no-resume (resume=False) to recompute it"
# The time budget in force (:func:`time_budget`): its length, its deadline on the monotonic
# clock, and whether a checkpoint or finished file was written since it began.
_BUDGET = {"minutes": None, "deadline": None, "progress": False}


def check_seed(seed):
    """Return ``seed`` as an ``int`` if it is an integer in ``[0, 2**32 - 1]``, else raise ``ValueError``.

    Every experiment calls this before any work, and the CLI before it starts one, so a
    bad seed is refused the same way everywhere (``True``/``False`` are not seeds).
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1]; got {seed!r}")
    return int(seed)


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


def to_numpy(x, dtype=None):
    """``x`` as a NumPy array: a torch tensor detached and copied to the CPU, anything else
    through ``np.asarray``; cast to ``dtype`` when one is given (the noisy quadratic's float64),
    else the input's dtype kept (a plot shows what it was given). The one converter of the
    library: the NumPy-side computations and the plots take tensors or arrays alike."""
    import torch

    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


@contextmanager
def cpu_settings(device, *, one_thread=False, flush_denormal=False):
    """Within the block, run torch on one thread when ``device`` is a CPU (``one_thread``: small
    unbatched operations gain nothing from more, and slow down badly on shared cores) and
    flush subnormal numbers to zero (``flush_denormal``: tiny learning rates push weight
    updates below 1e-38, which CPUs compute very slowly); both are restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    if one_thread and torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    if flush_denormal:
        torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flush_denormal:
            torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


def results_dir(override=None, *, writable=False):
    """Folder for result files: ``override``, else ``$SHORTBIAS_RESULTS``, else ``results/``.

    Created if missing. Raises :class:`ResultsFolderError` (one line) if it names a file
    or cannot be created, and, with ``writable``, if no file can be written in it
    (:func:`check_writable`).
    """
    path = Path(override or os.environ.get("SHORTBIAS_RESULTS") or REPO_ROOT / "results").expanduser()
    if path.exists() and not path.is_dir():
        raise ResultsFolderError(f"results folder {path} is a file, not a folder: "
                                 "give --results (results=) a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ResultsFolderError(f"cannot create results folder {path} ({error.strerror or error}): "
                                 "give --results (results=) a writable folder") from error
    if writable:
        check_writable(path)
    return path


def result_path(name, profile, seed, results=None, suffix=".npz"):
    """Where experiment ``name`` saves the result of ``profile`` and ``seed``:
    ``<results folder>/<name>_<profile>_seed<seed>.npz``, so no run replaces another's."""
    return results_dir(results) / f"{name}_{profile}_seed{check_seed(seed)}{suffix}"


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


# What a resumed result records of each leg it continues (its ``earlier_legs``).
LEG_FIELDS = ("device", "git_commit", "torch", "time_utc", "stage")


def legs_so_far(meta):
    """The legs of a partial checkpoint's run, given its provenance ``meta``: its own
    ``earlier_legs`` followed by the leg that wrote it (:data:`LEG_FIELDS`; a field it did
    not record is ``None``)."""
    return list(meta.get("earlier_legs", [])) + [{name: meta.get(name) for name in LEG_FIELDS}]


def devices_text(meta):
    """Where a result was computed: its device, preceded by those of the runs it resumed
    (``earlier_legs``, e.g. ``"cuda (NVIDIA H200) up to figure 6 curves, then cpu"``)."""
    legs = [f"{leg['device']} up to {leg['stage']}" for leg in meta.get("earlier_legs", [])]
    return ", then ".join(legs + [str(meta.get("device", ""))])


def started_utc(meta):
    """When a result was started: its first leg's time if it resumed runs elsewhere."""
    return (meta.get("earlier_legs") or [meta])[0].get("time_utc", "")


def save_result(path, arrays, meta):
    """Write ``arrays`` (name -> array) and ``meta`` (JSON-able) to ``path`` atomically.

    Leftover temporary files of killed writers in the same folder are removed first
    (:func:`~shortbias_lib.locks.remove_stale_temp_files`). An ``OSError`` (full disk, read-only folder)
    names ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {name: np.asarray(value) for name, value in arrays.items()}
    for name in RESERVED:
        if name in payload:
            raise ValueError(f"arrays must not contain the reserved name {name!r}")
    for name, value in payload.items():
        if value.dtype.hasobject:
            raise ValueError(f"array {name!r} has dtype object, which cannot be saved safely; "
                             "convert it to numbers or strings")
    payload["meta"] = np.array(json.dumps(meta, sort_keys=True, default=str))
    payload[MANIFEST] = np.array(json.dumps(
        {name: [list(value.shape), value.dtype.str, array_digest(value)] for name, value in payload.items()
         if name != "meta"}, sort_keys=True))
    remove_stale_temp_files(path.parent)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{host_tag()}-{os.getpid()}.",
                                        suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp_name, path)
    except OSError as error:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise OSError(error.errno, f"cannot write result file: {error.strerror or error}",
                      str(path)) from error
    except BaseException:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def array_digest(value):
    """SHA-256 (hex) of an array's bytes in C order: what a result file's manifest records,
    so one edited value is seen (shape and dtype are recorded beside it)."""
    return hashlib.sha256(np.ascontiguousarray(value)).hexdigest()  # hashes the buffer, no copy


def _corrupt(path, reason):
    return ResultFileError(f"result file {path} is damaged or was not written by this tool "
                           f"({reason}); {RECOMPUTE_HINT}, or delete it")


def _reason(error):
    """A short, safe description of why NumPy could not read an archive (never its pickle advice)."""
    text = str(error)
    if isinstance(error, ValueError) and "pickle" in text.lower():
        return "it holds an object array, which this tool never writes"
    if isinstance(error, zipfile.BadZipFile):
        return "the archive is truncated or damaged"
    if isinstance(error, EOFError):
        return "the archive is truncated"
    if isinstance(error, zlib.error):
        return "compressed data is damaged"
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first[:100]}" if first else type(error).__name__


def check_arrays(path, arrays, expected):
    """Raise :class:`ResultFileError` unless ``arrays`` holds every name of ``expected``
    (name -> shape, or ``None`` for any shape; a ``None`` in a shape matches any length)."""
    for name, shape in (expected or {}).items():
        if name not in arrays:
            raise ResultFileError(f"result file {path} lacks the array {name!r} that this "
                                  f"experiment writes; {RECOMPUTE_HINT}")
        if shape is None:
            continue
        actual = tuple(np.shape(arrays[name]))
        shape = tuple(shape)
        if len(actual) != len(shape) or any(w is not None and int(w) != a
                                            for w, a in zip(shape, actual)):
            raise ResultFileError(f"result file {path} has array {name!r} of shape {actual}, "
                                  f"expected {shape}; {RECOMPUTE_HINT}")


def load_result(path, expected=None):
    """Return ``(arrays, meta)`` from a file written by :func:`save_result`.

    A file that is not such a file (truncated, random bytes, an object array, no or
    broken ``meta``, arrays whose shape, dtype or digest differ from its manifest, or arrays missing or shaped
    otherwise than ``expected``, see :func:`check_arrays`) raises
    :class:`ResultFileError` with a one-line message naming it. A missing or unreadable
    file raises the usual ``OSError``.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head != b"PK\x03\x04":
        raise _corrupt(path, "it is empty" if not head else "it is not a NumPy .npz archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = archive.files
            if "meta" not in names:
                raise _corrupt(path, "it has no 'meta' entry")
            arrays = {name: archive[name] for name in names if name not in RESERVED}
            meta_text = str(archive["meta"])
            manifest_text = str(archive[MANIFEST]) if MANIFEST in names else None
    except ResultFileError:
        raise
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - any decoding failure means a damaged file
        raise _corrupt(path, _reason(error)) from error
    try:
        meta = json.loads(meta_text)
        manifest = json.loads(manifest_text) if manifest_text is not None else None
    except ValueError as error:
        raise _corrupt(path, "its 'meta' or manifest entry is not valid JSON") from error
    if not isinstance(meta, dict):
        raise _corrupt(path, "its 'meta' entry is not a JSON object")
    if manifest is not None:  # files of older versions have none
        if not isinstance(manifest, dict) or set(manifest) != set(arrays):
            raise _corrupt(path, "its arrays differ from its manifest (edited by hand?)")
        for name, value in arrays.items():
            spec = manifest[name]  # [shape, dtype], and its digest since digests are recorded
            if not (isinstance(spec, list) and len(spec) in (2, 3) and list(value.shape) == spec[0]
                    and value.dtype.str == spec[1]):
                raise _corrupt(path, f"array {name!r} differs from its manifest (edited by hand?)")
            if len(spec) == 3 and array_digest(value) != spec[2]:
                raise _corrupt(path, f"the values of array {name!r} differ from its manifest's "
                                     "digest (edited by hand?)")
    check_arrays(path, arrays, expected)
    return arrays, meta


def load_matching(path, config, expected=None, same=None):
    """Load ``path`` if it exists and was made with ``config``; else return ``None``.

    ``config`` is compared after a JSON round trip, so tuples and lists match; ``same``
    (e.g. ``{"profile": ..., "seed": ...}``) must also equal those entries of the
    provenance. A file that exists but cannot be read raises :class:`ResultFileError`
    (never silently reused or replaced); so does a matching file that lacks an array of
    ``expected`` or has it in another shape (:func:`check_arrays`).
    """
    path = Path(path)
    if not path.exists():
        return None
    arrays, meta = load_result(path)
    wanted = json_ready(config)
    if meta.get("config") != wanted:
        return None
    for key, value in (same or {}).items():
        if meta.get(key) != json_ready(value):
            return None
    check_arrays(path, arrays, expected)
    return arrays, meta


# ---------------------------------------------------------------- time-bounded legs

@contextlib.contextmanager
def time_budget(minutes=None):
    """Within this context, long runs stop cleanly once ``minutes`` have passed (``None``: no
    limit), raising :class:`~shortbias_lib.errors.TimeBudgetSpent` and keeping their partial
    checkpoints, from which the same command resumes (a leg of a run that a lent machine
    holds for minutes only).

    A run stops at its next checkpoint (:func:`after_checkpoint`). No new computation
    starts once the budget is spent, unless none has made progress yet under this budget
    (:func:`before_computation`): every leg advances by at least one checkpoint.
    """
    if minutes is not None and not (isinstance(minutes, (int, float)) and 0 < minutes < float("inf")):
        raise ValueError(f"max minutes must be a positive number; got {minutes!r}")
    previous = dict(_BUDGET)
    deadline = None if minutes is None else time.monotonic() + 60.0 * minutes
    _BUDGET.update(minutes=minutes, deadline=deadline, progress=False)
    try:
        yield
    finally:
        _BUDGET.update(previous)


def _stop_if_spent(where):
    if _BUDGET["deadline"] is not None and time.monotonic() >= _BUDGET["deadline"]:
        raise TimeBudgetSpent(f"stopped for time: the {_BUDGET['minutes']:g}-minute budget was spent "
                              f"at {where}; checkpoints are kept: run the same command again to resume")


def after_checkpoint(where):
    """Called by a long run right after it saved a checkpoint (``where``: e.g. the run and
    its step): stop (:class:`~shortbias_lib.errors.TimeBudgetSpent`) if the
    :func:`time_budget` is spent."""
    _BUDGET["progress"] = True
    _stop_if_spent(where)


def before_computation(where):
    """Called before a computation starts or resumes: stop if the :func:`time_budget` is
    spent and some checkpoint or result was already written under it."""
    if _BUDGET["progress"]:
        _stop_if_spent(where)


# ---------------------------------------------------------------- the experiment contract

class Result(NamedTuple):
    """What every experiment returns: its arrays (name -> NumPy array) and ``meta``, the
    provenance and configuration of its result file (:func:`provenance`). It unpacks as
    ``arrays, meta = result``."""

    arrays: dict
    meta: dict


def json_ready(value):
    """``value`` after a JSON round trip: what a result file's ``meta`` holds (tuples become
    lists, other objects their ``str``), so a configuration compares equal to a recorded one."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def run_or_resume(path, config, compute, *, resume=True, expected=None, same=None, reuse=None):
    """Reuse the finished result file ``path`` or compute it: the one run-or-resume of every
    experiment; returns a :class:`Result` read from the file.

    With ``resume``, a file made with ``config`` (and the provenance entries ``same``,
    holding the arrays ``expected``; :func:`load_matching`) is reused unless
    ``reuse(meta)`` says otherwise (e.g. it was made from other data). Else
    ``compute()`` runs under :func:`~shortbias_lib.locks.run_lock` and writes the
    finished file to ``path`` (:func:`save_result`; a long computation resumes from
    its own checkpoints, :func:`partial_path`). What is returned is read back from the file,
    so a fresh run and a reused one give the same arrays. A run asked to stop early (one leg
    of a run finished elsewhere) writes no finished file: its ``compute`` returns its partial
    :class:`Result`, which is returned as is. Once the finished file is written or reused, a
    checkpoint of the same configuration beside it is removed (:func:`_drop_partial`).
    """
    if resume:
        found = load_matching(path, config, expected, same)
        if found is not None and (reuse is None or reuse(found[1])):
            _drop_partial(path, config, same)
            return Result(*found)
    with run_lock(path):
        before_computation(f"the start of {Path(path).name}")
        partial = compute()
        if isinstance(partial, Result):
            return partial
        partial_path(path).unlink(missing_ok=True)  # what it resumed from, or ignored with resume=False
    _BUDGET["progress"] = True
    return Result(*load_result(path, expected))


def same_data(data_fingerprint):
    """The ``reuse`` test of :func:`run_or_resume` for data with ``data_fingerprint``: a file
    recorded from other data is not reused (one that records none, or a run given none, is)."""
    def reuse(meta):
        recorded = meta.get("data_fingerprint")
        return data_fingerprint is None or recorded is None or recorded == json_ready(data_fingerprint)
    return reuse


def matching_checkpoint(partial, config, profile, seed, data_fingerprint=None):
    """The partial checkpoint ``partial`` as ``(arrays, meta)`` if it was made with this
    configuration, profile, seed and data (:func:`same_data`), else ``None``."""
    found = load_matching(partial, config, same={"profile": profile, "seed": seed})
    return found if found is not None and same_data(data_fingerprint)(found[1]) else None


def checkpoint_saver(partial, arrays, started, on_checkpoint=None, leg=None):
    """``save(stage)`` for an experiment's partial checkpoint: write ``arrays`` to ``partial``
    atomically with the provenance ``started`` and the ``stage`` reached, call
    ``on_checkpoint(stage)`` if given, and, with ``leg`` (a name for the log), let a
    :func:`time_budget` leg stop there."""
    def save(stage):
        save_result(partial, arrays, dict(started, stage=stage))
        if on_checkpoint is not None:
            on_checkpoint(stage)
        if leg is not None:
            after_checkpoint(f"{leg} {stage}")
    return save


def partial_path(path):
    """Where a run of the finished file ``path`` keeps its partial checkpoint: beside it,
    suffix ``.partial.npz``."""
    return Path(path).with_suffix(".partial.npz")


def _drop_partial(path, config, same):
    """Remove the checkpoint of a recomputation of the reused file ``path`` (an interrupted
    ``--no-resume`` run: the finished file was reused instead). One of another configuration
    is kept for its own run, and so is one that a run is computing now (its lock is held)."""
    partial = partial_path(path)
    if not partial.exists():
        return
    try:
        with run_lock(path):
            if load_matching(partial, config, same=same) is not None:
                partial.unlink(missing_ok=True)
    except (ShortbiasError, OSError):  # being computed, damaged or unreadable: not ours to remove
        pass


def run_shared(jobs, *, resume=True, expected=None, same=None, poll_seconds=30, desc=None, show_progress=True):
    """:func:`run_or_resume` of several independent files, shared with other processes doing
    the same: ``{key: Result}`` in the order of ``jobs`` (``{key: (path, config, compute)}``).

    A file whose lock another process holds (:class:`~shortbias_lib.errors.ResultLockedError`)
    is passed over; once every other file is done, each passed-over one is looked at again
    every ``poll_seconds`` and read when its process has finished it (or computed here, if
    that process died). So two copies of one command split its runs between them. Under a
    :func:`time_budget`, waiting stops once the budget is spent.
    """
    found, waiting = {}, []
    for key in progress(list(jobs), desc=desc, disable=None if show_progress else True):
        path, config, compute = jobs[key]
        try:
            found[key] = run_or_resume(path, config, compute, resume=resume, expected=expected, same=same)
        except ResultLockedError:
            waiting.append(key)
    while waiting:
        _stop_if_spent(f"waiting for another process's {', '.join(map(str, waiting))}")
        time.sleep(poll_seconds)
        key = waiting.pop(0)
        path, config, compute = jobs[key]
        try:  # the other process's finished file is reused, whatever ``resume`` says
            found[key] = run_or_resume(path, config, compute, resume=True, expected=expected, same=same)
        except ResultLockedError:
            waiting.append(key)
    return {key: found[key] for key in jobs}

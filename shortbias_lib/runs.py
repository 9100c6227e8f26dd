"""Running experiments: device choice, provenance, atomic result files, progress.

Every result file is a NumPy ``.npz`` archive holding the arrays of a run
plus one JSON string, ``meta``, with its provenance (git commit, profile,
device, seed, time, library versions) and its configuration. Files are
written to a temporary name and renamed, so a reader never sees half a
file; a run that finds a finished file with the same configuration reuses
it, and long runs checkpoint partial results the same way to resume.

Integrity: a file also holds a manifest of its arrays' names, shapes and
dtypes, checked when it is read, so a damaged or hand-edited file gives a
one-line :class:`~shortbias_lib.errors.ResultFileError` (never a traceback,
never reused). Result files are named by experiment, profile and seed
(:func:`result_path`); a run holds :func:`run_lock` on its file while it
computes, so two runs of one configuration never mix; seeds are checked by
:func:`check_seed`.
"""

import contextlib
import datetime
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .errors import ResultFileError, ResultLockedError, ResultsFolderError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEVICES = ("auto", "cpu", "cuda")
SEED_LIMIT = 2 ** 32
MANIFEST = "__manifest__"  # reserved entry: {name: [shape, dtype]} of the arrays
RESERVED = ("meta", MANIFEST)
STALE_TEMP_SECONDS = 3600
RECOMPUTE_HINT = "rerun with --no-resume (resume=False) to recompute it"


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


def check_writable(folder):
    """Raise :class:`ResultsFolderError` unless a file can be created in ``folder``.

    Experiments call it before a long computation, so a read-only folder fails at once
    rather than when the result is saved. (Creating a file is the only reliable test:
    ``os.access`` says yes to root on a read-only mount.)
    """
    folder = Path(folder)
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".write-check.{_host_tag()}-{os.getpid()}.",
                                    suffix=".tmp")
        os.close(fd)
        os.unlink(name)
    except OSError as error:
        raise ResultsFolderError(f"results folder {folder} is not writable ({error.strerror or error}): "
                                 "give --results (results=) a writable folder") from error
    return folder


def result_path(name, profile, seed, results=None, suffix=".npz"):
    """Where experiment ``name`` saves the result of ``profile`` and ``seed``:
    ``<results folder>/<name>_<profile>_seed<seed>.npz``, so no run replaces another's."""
    return results_dir(results) / f"{name}_{profile}_seed{check_seed(seed)}{suffix}"


# ---------------------------------------------------------------- one run per result file

def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # another user's process (or an impossible pid: treated as gone)
    return True


def _host_tag():
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _lock_holder(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 200).decode(errors="replace").split()
    except OSError:
        text = []
    return f"pid {text[0]} on {text[1]}" if len(text) >= 2 else "another process"


@contextlib.contextmanager
def run_lock(path):
    """Hold the lock of result file ``path`` (``path + ".lock"``) for the ``with`` block.

    A second run of the same result file (another process, or the same one) refuses at
    once with :class:`ResultLockedError` naming the file and the holder's pid, rather
    than mixing its checkpoints and results with the first run's. The lock is a
    ``flock`` on the lock file, which the system drops when its holder dies, so a
    leftover lock file (a killed run, a dead pid) is simply taken over. The lock file
    holds ``"<pid> <host>"`` for the message and is removed on exit. POSIX only.
    Inside the block the results folder is known to be writable (:func:`check_writable`),
    so a long computation never starts only to fail when it saves.
    """
    import fcntl

    lock = Path(str(path) + ".lock")
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise ResultsFolderError(f"cannot create the lock file {lock} ({error.strerror or error}): "
                                     "give --results (results=) a writable folder") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise ResultLockedError(
                f"{path} is being computed by another run ({holder}, lock file {lock}); "
                "wait for it to finish, or stop it and run again") from None
        except OSError:  # a file system without locks: run unprotected, as before locks existed
            os.close(fd)
            lock.unlink(missing_ok=True)
            check_writable(lock.parent)
            yield lock
            return
        except BaseException:
            os.close(fd)
            raise
        try:  # the previous holder may have removed the file between our open and flock
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        check_writable(lock.parent)
        yield lock
    finally:
        try:
            lock.unlink(missing_ok=True)  # while still held: no one else can own this file
        finally:
            os.close(fd)


# ---------------------------------------------------------------- leftovers

# ".<name>.<host>-<pid>.<random>.tmp", or ".<name>.npz.<random>.tmp" (older versions)
_TEMP_NAME = re.compile(r"^\.(?:.+\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)|.+\.npz)\.[a-z0-9_]{8}\.tmp$")


def remove_stale_temp_files(folder, max_age=STALE_TEMP_SECONDS):
    """Delete this tool's leftover temporary files in ``folder``; return their paths.

    :func:`save_result` writes ``.<name>.<host>-<pid>.<random>.tmp`` and renames it; a
    run killed while writing leaves it behind. Such a file is removed when its writer
    (same host) is no longer running, or when it is older than ``max_age`` seconds
    (files of other hosts, and ``.<name>.npz.<random>.tmp`` of older versions, which
    lack the pid). Other files are never touched.
    """
    removed = []
    now = time.time()
    host = _host_tag()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            gone = match["host"] == host and not _pid_alive(int(match["pid"]))
            if gone or age > max_age:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue  # removed by someone else, or not ours to remove: leave it
    return removed


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
    (:func:`remove_stale_temp_files`). An ``OSError`` (full disk, read-only folder)
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
        {name: [list(value.shape), value.dtype.str] for name, value in payload.items()
         if name != "meta"}, sort_keys=True))
    remove_stale_temp_files(path.parent)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_host_tag()}-{os.getpid()}.",
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
    broken ``meta``, arrays that differ from its manifest, or arrays missing or shaped
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
            spec = manifest[name]
            if not (isinstance(spec, list) and len(spec) == 2 and list(value.shape) == spec[0]
                    and value.dtype.str == spec[1]):
                raise _corrupt(path, f"array {name!r} differs from its manifest (edited by hand?)")
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
    wanted = json.loads(json.dumps(config, sort_keys=True, default=str))
    if meta.get("config") != wanted:
        return None
    for key, value in (same or {}).items():
        if meta.get(key) != json.loads(json.dumps(value, default=str)):
            return None
    check_arrays(path, arrays, expected)
    return arrays, meta


PROGRESS_INTERVAL = 30.0
"""Seconds between two progress lines in a log (``$SHORTBIAS_PROGRESS_SECONDS`` overrides)."""


class _LogLines(tqdm):
    """tqdm writing one plain line per refresh, for output redirected to a file: no
    carriage returns, no cursor moves, no bar; the first and the last state always show."""

    def display(self, msg=None, pos=None):
        if msg == "":  # tqdm clearing a bar: nothing to clear in a log
            return False
        self.fp.write((self.__str__() if msg is None else msg) + "\n")
        self.fp.flush()
        return True


class _NoBlankWrites:
    """A file that drops what tqdm writes to end or clear a line (``\\n``, ``\\r``)."""

    def __init__(self, file):
        self.file = file

    def write(self, text):
        if text.strip():
            self.file.write(text)

    def flush(self):
        getattr(self.file, "flush", lambda: None)()


def _in_notebook():
    """True inside a Jupyter kernel (where the book runs: cell output must stay clean)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return getattr(shell, "kernel", None) is not None


def _is_terminal(file):
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def progress(iterable=None, **kwargs):
    """Progress of a long loop: a tqdm bar on a terminal; one plain line every
    :data:`PROGRESS_INTERVAL` seconds (and at the start and the end) when the output
    goes to a log file or a pipe; silent in a notebook kernel. ``disable=True``
    silences it, ``disable=False`` forces the bar; other keywords go to tqdm."""
    file = kwargs.get("file") or sys.stderr
    if kwargs.get("disable", None) is None and file is not None and not _is_terminal(file):
        if _in_notebook():
            kwargs["disable"] = True
            return tqdm(iterable, **kwargs)
        interval = float(os.environ.get("SHORTBIAS_PROGRESS_SECONDS", PROGRESS_INTERVAL))
        kwargs.update(disable=False, file=_NoBlankWrites(file), leave=True,
                      dynamic_ncols=False, ncols=None, ascii=True)
        kwargs.setdefault("mininterval", interval)
        kwargs.setdefault("miniters", 1)  # no dynamic miniters: the time alone decides
        total = kwargs.get("total")
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        if total:
            kwargs.setdefault("bar_format", "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) "
                              "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")
        return _LogLines(iterable, **kwargs)
    kwargs.setdefault("disable", None)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)

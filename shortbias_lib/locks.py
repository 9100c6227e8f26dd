"""One run per result file, and the leftovers of killed runs.

:func:`run_lock` makes a second run of one result file refuse at once instead of
mixing its checkpoints with the first's; :func:`remove_stale_temp_files` removes the
temporary files of writers killed mid-write; :func:`check_writable` tells before a
long computation whether its results folder can take the file.
"""

import contextlib
import os
import re
import socket
import tempfile
import time
import zlib
from pathlib import Path

from .errors import ResultLockedError, ResultsFolderError

STALE_TEMP_SECONDS = 3600


def check_writable(folder):
    """Raise :class:`ResultsFolderError` unless a file can be created in ``folder``.

    Experiments call it before a long computation, so a read-only folder fails at once
    rather than when the result is saved. (Creating a file is the only reliable test:
    ``os.access`` says yes to root on a read-only mount.)
    """
    folder = Path(folder)
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".write-check.{host_tag()}-{os.getpid()}.",
                                    suffix=".tmp")
        os.close(fd)
        os.unlink(name)
    except OSError as error:
        raise ResultsFolderError(f"results folder {folder} is not writable ({error.strerror or error}): "
                                 "give --results (results=) a writable folder") from error
    return folder



def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # another user's process (or an impossible pid: treated as gone)
    return True


def host_tag():
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
    host = host_tag()
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

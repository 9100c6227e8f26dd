"""Progress of long loops: a bar on a terminal, plain lines in a log, silence in a notebook."""

import os
import sys

from tqdm import tqdm

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

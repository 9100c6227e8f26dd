"""Execute the book's notebooks with papermill, then build the HTML with Jupyter Book.

    python tools/build_book.py --profile quick            # the whole book -> _build/html
    python tools/build_book.py --profile smoke --root DIR # a copy of the book in DIR

Each notebook listed in ``_toc.yml`` is converted from its Jupytext ``.py``
source and executed with the profile's parameters (papermill, kernel
``python3``, working directory = the book root) into ``_build/executed/``, a
mirror of the book root (its other files are symbolic links to the real ones);
Jupyter Book renders that mirror into ``_build/html`` with warnings as errors.
The sources in ``book/`` and their Jupytext pairing (``book/*.ipynb``, made by
``jupytext --sync`` for interactive use) are never written by the build.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml
import zmq
from jupyter_client.manager import AsyncKernelManager
from traitlets.config import Config

from shortbias_lib.profiles import DEFAULT_PROFILE, PROFILES


def toc_notebooks(root):
    """The ``.py`` notebook sources of every page in ``_toc.yml``, in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    entries = [toc["root"]]
    stack = list(toc.get("chapters", [])) + list(toc.get("parts", []))
    while stack:
        entry = stack.pop(0)
        if "file" in entry:
            entries.append(entry["file"])
        stack[:0] = entry.get("chapters", []) + entry.get("sections", [])
    return [root / f"{name}.py" for name in entries if (root / f"{name}.py").exists()]


EXECUTED = Path("_build") / "executed"


def executed_notebook(root, source):
    """Where the build writes the executed notebook of ``source``: ``_build/executed/book/X.ipynb``."""
    return root / EXECUTED / source.relative_to(root).with_suffix(".ipynb")


def stage(root, sources, fresh):
    """Make ``root/_build/executed`` a mirror of the book root for Jupyter Book: every
    top-level entry (``_config.yml``, ``_toc.yml``, ...) and every file of ``book/``
    except the notebook sources and their paired ``.ipynb`` is a symbolic link to the
    real one, so relative paths resolve as in the sources; the executed notebooks take
    the sources' places. ``fresh`` drops notebooks executed by an earlier build."""
    staged = root / EXECUTED
    if fresh:
        shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True, exist_ok=True)
    notebook_dirs = {source.parent for source in sources}
    stems = {(source.parent, source.stem) for source in sources}

    def mirror(folder, target):
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(".") or entry == root / "_build":
                continue
            link = target / entry.name
            if entry in notebook_dirs:
                link.mkdir(exist_ok=True)
                mirror(entry, link)
            elif (entry.suffix in (".py", ".ipynb") and (folder, entry.stem) in stems):
                continue  # a source, or its paired notebook: replaced by the executed one
            elif not link.is_symlink() and not link.exists():
                link.symlink_to(entry.resolve())

    mirror(root, staged)
    return staged


# Displaying ipywidgets sometimes never returns under nbclient: the kernel is idle and the
# client waits forever (jupyter/nbclient#312, nteract/papermill#723). Cells tagged "widget"
# therefore get a time limit, and a chapter that hits it is executed once more.
WIDGET_CELL_TIMEOUT = 300
WIDGET_TAG = "widget"


def cell_timeout(cell):
    """nbclient's per-cell limit in seconds: ``WIDGET_CELL_TIMEOUT`` for a cell tagged
    ``widget``, none for any other (a ``paper`` cell may run for hours)."""
    return WIDGET_CELL_TIMEOUT if WIDGET_TAG in cell.get("metadata", {}).get("tags", []) else None


def kernel_config():
    """nbclient's configuration for the chapters' kernels: CurveZMQ transport encryption.

    ipykernel (7.x) logs "Kernel is running over TCP without encryption ..." on stderr at every
    start of a kernel whose manager gave it no CurveZMQ keys, which is jupyter_client's default
    (``KernelManager.transport_encryption = "disabled"``): one warning per chapter in the build
    log. With ``"auto"`` the manager provisions keys for a kernel whose kernelspec declares
    ``supported_encryption: curve`` (the venv's ``python3`` kernel does), so the kernel is
    encrypted and has nothing to warn about. A pyzmq built without CurveZMQ rejects that
    setting, and its kernels keep the default (and the warning)."""
    config = Config()
    if zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"
    return config


class QuietShutdownKernelManager(AsyncKernelManager):
    """A kernel manager that shuts its kernel down without interrupting it first.

    jupyter_client's ``shutdown_kernel`` sends SIGINT before the shutdown request; a kernel
    still finishing a message (a comm message, the last reply) turns it into an exception
    and logs ``[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel`` in the build log,
    now and then, though the chapter ran. The shutdown request alone ends the kernel (a
    kernel that ignores it is still killed), so the interrupt is skipped once shutting down."""

    async def _async_interrupt_kernel(self):
        if not self.shutting_down:
            await super()._async_interrupt_kernel()


def execute(source, root, parameters, attempts=2):
    """Execute one Jupytext notebook with papermill into ``_build/executed/`` (again, up to
    ``attempts`` times in all, if a widget cell hangs: :func:`cell_timeout`)."""
    output = executed_notebook(root, source)
    output.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(source)
    # the executed copy is paired with nothing: Jupytext never writes it back to a source
    notebook.metadata.get("jupytext", {}).pop("formats", None)
    unexecuted = output.with_name(f".{source.stem}.unexecuted.ipynb")
    nbformat.write(notebook, unexecuted)
    try:
        for attempt in range(1, attempts + 1):
            try:
                papermill.execute_notebook(
                    str(unexecuted), str(output), parameters=parameters, kernel_name="python3",
                    cwd=str(root), progress_bar=False, log_output=False, timeout_func=cell_timeout,
                    config=kernel_config(), kernel_manager_class=QuietShutdownKernelManager)
                break
            except TimeoutError:
                if attempt == attempts:
                    raise
                print(f"build_book: a widget cell of {source.name} hung for {WIDGET_CELL_TIMEOUT} s "
                      "(jupyter/nbclient#312); executing it again", flush=True)
    finally:
        unexecuted.unlink(missing_ok=True)
    hide_injected_parameters(output)


def hide_injected_parameters(path):
    """Hide papermill's parameters cell in the HTML (it holds local paths); the
    banner each chapter shows under it already names the profile, device and seed."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(notebook, path)


def build_html(root):
    """Render ``root/_build/executed`` to ``root/_build/html`` with warnings as errors,
    after removing the previous HTML (Jupyter Book builds incrementally)."""
    for old in (root / "_build").glob("*"):
        if old != root / EXECUTED and old.name != "screenshots":
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root / EXECUTED),
               "--path-output", str(root), "--builder", "html", "-W", "-n", "--keep-going"]
    if subprocess.run(command).returncode != 0:
        sys.exit("build_book: jupyter-book build failed (warnings are errors); see above")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="book root holding _config.yml, _toc.yml and book/")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--data-root", default=None,
                        help="data folder (default: $SHORTBIAS_DATA, else the user cache)")
    parser.add_argument("--results", default=None,
                        help="results folder (default: ROOT/results)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None,
                        help="execute only these notebooks (stems), e.g. --only intro")
    parser.add_argument("--no-html", action="store_true", help="execute notebooks only")
    args = parser.parse_args(argv)

    root = args.root.resolve()
    os.environ.pop("MPLBACKEND", None)  # an Agg backend drops inline figures silently
    parameters = {"profile": args.profile, "device": args.device, "seed": args.seed,
                  "data_root": args.data_root or os.environ.get("SHORTBIAS_DATA"),
                  "results": args.results or str(root / "results")}
    sources = toc_notebooks(root)
    stage(root, sources, fresh=args.only is None)
    for source in sources:
        if args.only is not None and source.stem not in args.only:
            continue
        start = time.perf_counter()
        print(f"build_book: executing {source.relative_to(root)} ({args.profile})", flush=True)
        try:
            execute(source, root, parameters)
        except papermill.PapermillExecutionError as error:
            sys.exit(f"build_book: {source.name} failed in cell {error.exec_count}: "
                     f"{error.ename}: {error.evalue}")
        print(f"build_book: {source.name} done in {time.perf_counter() - start:.0f} s "
              f"-> {executed_notebook(root, source).relative_to(root)}", flush=True)
    if not args.no_html:
        build_html(root)
        print(f"build_book: HTML in {root / '_build' / 'html'}")


if __name__ == "__main__":
    main()

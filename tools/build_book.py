"""Execute the book's notebooks with papermill, then build the HTML with Jupyter Book.

    python tools/build_book.py --profile quick            # the whole book -> _build/html
    python tools/build_book.py --profile smoke --root DIR # a copy of the book in DIR

Each notebook listed in ``_toc.yml`` is converted from its Jupytext ``.py``
source, executed with the profile's parameters (papermill, kernel
``python3``, working directory = the book root) and written next to its
source as ``.ipynb``; Jupyter Book then renders those with warnings as errors.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from shortbias_lib.profiles import DEFAULT_PROFILE, PROFILES  # noqa: E402


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


def execute(source, root, parameters):
    """Execute one Jupytext notebook with papermill, writing ``source.ipynb``."""
    notebook = jupytext.read(source)
    unexecuted = source.with_name(f".{source.stem}.unexecuted.ipynb")
    nbformat.write(notebook, unexecuted)
    try:
        papermill.execute_notebook(
            str(unexecuted), str(source.with_suffix(".ipynb")), parameters=parameters,
            kernel_name="python3", cwd=str(root), progress_bar=False, log_output=False)
    finally:
        unexecuted.unlink(missing_ok=True)
    hide_injected_parameters(source.with_suffix(".ipynb"))


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
    """Render the executed notebooks to ``root/_build/html`` with warnings as errors."""
    shutil.rmtree(root / "_build", ignore_errors=True)
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root),
               "--builder", "html", "-W", "-n", "--keep-going"]
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
    for source in toc_notebooks(root):
        if args.only is not None and source.stem not in args.only:
            continue
        start = time.perf_counter()
        print(f"build_book: executing {source.relative_to(root)} ({args.profile})", flush=True)
        try:
            execute(source, root, parameters)
        except papermill.PapermillExecutionError as error:
            sys.exit(f"build_book: {source.name} failed in cell {error.exec_count}: "
                     f"{error.ename}: {error.evalue}")
        print(f"build_book: {source.name} done in {time.perf_counter() - start:.0f} s", flush=True)
    if not args.no_html:
        build_html(root)
        print(f"build_book: HTML in {root / '_build' / 'html'}")


if __name__ == "__main__":
    main()

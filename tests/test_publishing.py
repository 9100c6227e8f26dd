"""Publishing and interactive use: the CI workflow (linted with actionlint, and still
testing, building and publishing the book), ``make lab`` kept apart from the build and
the tests, and the progress lines long runs print into a log."""

import io
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from shortbias_lib import progress
from shortbias_lib.runs import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent


# ------------------------------------------------------------------ the CI workflow

def _actionlint():
    found = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
    if found is None:
        reason = "actionlint is not installed: `make dev` (pip install -r requirements-dev.txt)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # make test installs it, so CI must run it
        pytest.skip(reason)
    return found


def test_workflows_pass_actionlint():
    workflows = sorted(WORKFLOWS.glob("*.y*ml"))
    assert workflows, "no workflow in .github/workflows"
    result = subprocess.run([_actionlint(), "-no-color", *map(str, workflows)], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path):
    """The lint is live: a workflow with an unknown key and a bad expression fails it."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(textwrap.dedent("""\
        on: push
        jobs:
          build:
            runs-on: ubuntu-24.04
            step:
              - run: echo ${{ github.nonexistent_context_field }}
        """))
    result = subprocess.run([_actionlint(), "-no-color", str(broken)], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "broken.yml" in result.stdout


def _steps(job):
    return job.get("steps", [])


def test_workflow_runs_the_readme_test_command_builds_and_publishes_the_book():
    readme = (REPO_ROOT / "README.md").read_text()
    test_command = re.search(r"^\S*\s*make test\b", readme, re.M)
    assert test_command, "README: no test command"
    (path,) = [p for p in WORKFLOWS.glob("*.y*ml") if "deploy-pages" in p.read_text()]
    workflow = yaml.safe_load(path.read_text())
    jobs = workflow["jobs"]
    steps = [(name, step) for name, job in jobs.items() for step in _steps(job)]
    runs_ = [(name, step.get("run", "")) for name, step in steps]
    uses = [(name, step.get("uses", ""), step.get("with", {})) for name, step in steps]

    test_job = next(name for name, run in runs_ if re.search(r"\bmake test\b", run))
    build_job = next(name for name, run in runs_ if re.search(r"\bmake book\b", run))
    upload = [(name, w) for name, use, w in uses if use.startswith("actions/upload-pages-artifact@")]
    deploy = [name for name, use, _ in uses if use.startswith("actions/deploy-pages@")]
    assert upload and upload[0][1].get("path") == "_build/html", upload
    assert upload[0][0] == build_job, "the uploaded HTML must come from the job that built it"
    order = [run for name, run in runs_ if name == build_job]
    if test_job == build_job:  # one job: the tests run before the book is built
        assert [i for i, run in enumerate(order) if "make test" in run][0] < \
            [i for i, run in enumerate(order) if "make book" in run][0]
    assert deploy, "no actions/deploy-pages step"
    deploy_job = jobs[deploy[0]]
    needs = deploy_job.get("needs", [])
    assert build_job in ([needs] if isinstance(needs, str) else needs)
    assert deploy_job["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy_job["environment"]["name"] == "github-pages"
    # deploy only from main, never from a pull request
    assert "refs/heads/main" in deploy_job.get("if", "") and "pull_request" in deploy_job["if"]
    # yaml reads the key `on` as True
    triggers = workflow.get("on", workflow.get(True))
    assert "push" in triggers and "pull_request" in triggers


# ------------------------------------------------------------------ make lab

def _make_dry_run(target):
    """The commands ``make TARGET`` would run, from scratch (``-n -B``: nothing runs)."""
    return subprocess.run(["make", "-n", "-B", target], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True).stdout


def test_make_lab_installs_pinned_jupyterlab_pairs_the_chapters_and_opens_one():
    commands = _make_dry_run("lab")
    assert "pip install -r requirements-lab.txt" in commands
    assert re.search(r"jupytext --sync book/\*\.py", commands)
    assert re.search(r"jupyter lab .*book/intro\.ipynb", commands)
    assert "requirements-lab.txt" not in _make_dry_run("test")
    assert "requirements-lab.txt" not in _make_dry_run("book")
    assert "requirements-dev.txt" in _make_dry_run("test")


def test_make_test_lints_the_sources_before_the_tests():
    commands = _make_dry_run("test")
    assert re.search(r"ruff check shortbias_lib tests tools bench book/\*\.py", commands)
    assert commands.index("ruff check") < commands.index("pytest")


def _pins(name):
    pins = {}
    for line in (REPO_ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            package, sep, version = line.partition("==")
            assert sep and version, f"{name}: {line!r} is not an exact pin"
            pins[re.sub(r"[-_.]+", "-", package).lower()] = version
    return pins


def test_optional_requirements_are_exact_pins_that_agree_with_the_core_ones():
    core = _pins("requirements.txt")
    lab, dev = _pins("requirements-lab.txt"), _pins("requirements-dev.txt")
    assert "jupyterlab" in lab and "jupytext" in lab
    assert any(name.startswith("actionlint") for name in dev) and "ruff" in dev
    for extra in (lab, dev):
        for package, version in extra.items():
            assert core.get(package, version) == version, f"{package}: {version} vs {core[package]}"


# ------------------------------------------------------------------ progress in a log

LOOP = """
import time
from shortbias_lib.progress import progress
for i in progress(range(6), desc="demo"):
    time.sleep(0.05)
bar = progress(total=3, desc="inner", leave=False)
for i in range(3):
    bar.update()
bar.close()
"""


def test_progress_prints_plain_lines_when_redirected_to_a_log(tmp_path):
    log = tmp_path / "run.log"
    env = dict(os.environ, SHORTBIAS_PROGRESS_SECONDS="0.1")
    with open(log, "w") as handle:
        subprocess.run([sys.executable, "-c", LOOP], stdout=handle, stderr=subprocess.STDOUT,
                       env=env, check=True, timeout=120)
    text = log.read_text()
    assert "\r" not in text and "\x1b" not in text, repr(text)
    lines = text.splitlines()
    demo = [line for line in lines if line.startswith("demo:")]
    assert demo[0].startswith("demo: 0/6 (0%)") and demo[-1].startswith("demo: 6/6 (100%)"), lines
    assert len(demo) >= 3, lines  # intermediate lines at the interval, not only start and end
    assert any(line.startswith("inner: 3/3 (100%)") for line in lines), lines  # leave=False too
    assert all(line.strip() for line in lines), lines


def test_progress_lines_follow_the_interval():
    out = io.StringIO()
    bar = progress.progress(total=1000, desc="fast", file=out, mininterval=3600)
    for _ in range(1000):
        bar.update()
    bar.close()
    assert out.getvalue().splitlines() == [
        line for line in out.getvalue().splitlines() if line.startswith("fast: ")]
    assert len(out.getvalue().splitlines()) == 2  # the start and the end only


def test_progress_is_silent_in_a_notebook_kernel_and_when_disabled(monkeypatch):
    class Kernel:
        kernel = object()

    class FakeIPython:
        @staticmethod
        def get_ipython():
            return Kernel()

    out = io.StringIO()
    for _ in progress.progress(range(3), file=out, disable=True):
        pass
    monkeypatch.setitem(sys.modules, "IPython", FakeIPython)
    for _ in progress.progress(range(3), file=out):
        pass
    assert out.getvalue() == ""


def test_progress_draws_a_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    for _ in progress.progress(range(3), desc="tty", file=out, mininterval=0):
        pass
    assert "\r" in out.getvalue() and "|" in out.getvalue()  # tqdm's redrawn bar


@pytest.mark.parametrize("source", sorted((REPO_ROOT / "book").glob("*.py")), ids=lambda path: path.name)
def test_chapter_sources_survive_the_notebook_round_trip_unchanged(source):
    """`make lab` pairs each chapter with a notebook (jupytext --sync): a source not already in
    the form Jupytext writes would be rewritten by it (header fields, cell-option order)."""
    import jupytext

    text = source.read_text()
    notebook = jupytext.reads(jupytext.writes(jupytext.reads(text, fmt="py:percent"), fmt="ipynb"), fmt="ipynb")
    assert jupytext.writes(notebook, fmt="py:percent") == text, \
        f"run `jupytext --to py:percent book/{source.name}` on its notebook, or see CONTRIBUTING.md"

"""The command line (``python -m shortbias_lib``, shortbias_lib/__main__.py)."""

import os
import subprocess
import sys

import pytest

from shortbias_lib.runs import REPO_ROOT


def _cli(*args, env=None):
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "shortbias_lib", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, env=environment, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["data", "--profile", "fast"], "profile must be one of smoke, quick, paper; got 'fast'"),
    (["data", "--data-root", "/no/such/folder"], "data root /no/such/folder does not exist"),
    (["no-such-experiment"], "experiment must be one of"),
])
def test_cli_errors_are_one_line_and_exit_2(args, message):
    result = _cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_cli_reports_the_data_sources(data_root):
    result = _cli("data", "--data-root", str(data_root))
    assert result.returncode == 0, result.stderr
    assert "canonical MNIST files" in result.stdout and "JPEG copy" in result.stdout


def test_every_cli_experiment_exists_with_the_common_signature():
    import inspect

    from shortbias_lib.__main__ import EXPERIMENTS

    for name, experiment in EXPERIMENTS.items():
        parameters = inspect.signature(experiment.run).parameters
        for keyword in ("device", "seed", "data_root", "results", "resume"):
            assert keyword in parameters, f"{name}: {experiment.run.__name__} lacks {keyword}"

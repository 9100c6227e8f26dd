"""The library's layout, read from its import statements (ast): no experiment imports another,
and generic modules (the ground floor, the engine, the noisy quadratic, the plots) import no
experiment (only the top floor does: the command line and the chapters' facts); the package
docstring maps every subpackage and each subpackage maps its modules."""

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "shortbias_lib"
EXPERIMENTS = "shortbias_lib.experiments"
CHAPTERS = "shortbias_lib.chapters"
TOP_FLOOR = ("shortbias_lib.__main__",)


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name, source, is_package, known):
    """The modules of the package that ``source`` (module ``name``) imports: absolute and
    relative imports, ``from P import X`` counting X when it is a module of ``known``."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return {m for m in found if m == "shortbias_lib" or m.startswith("shortbias_lib.")}


def experiment_of(name):
    """``offline`` for ``shortbias_lib.experiments.offline.smd``; None outside the experiments."""
    parts = name.split(".")
    return parts[2] if name.startswith(EXPERIMENTS + ".") else None


def violations(modules):
    """``(importer, imported, rule)`` for every import that breaks a layout rule; ``modules``
    maps a module's name to ``(source, is_package)``."""
    known = set(modules)
    found = []
    for name, (source, is_package) in modules.items():
        mine = experiment_of(name)
        for target in imported(name, source, is_package, known):
            theirs = experiment_of(target)
            if theirs is None or theirs == mine or name in TOP_FLOOR or name.startswith(CHAPTERS + "."):
                continue  # the CLI registers every experiment; a chapter's facts read any
            if mine is not None:
                found.append((name, target, "an experiment imports another"))
            elif name.startswith("shortbias_lib.plots"):
                found.append((name, target, "a plot module imports an experiment"))
            else:
                found.append((name, target, "a generic module imports an experiment"))
    return found


def test_no_module_breaks_a_layout_rule():
    modules = {name: (path.read_text(), path.name == "__init__.py") for name, path in MODULES.items()}
    assert violations(modules) == []


def test_the_rules_catch_each_kind_of_leaning():
    modules = {
        "shortbias_lib.experiments.online.loop": ("from ..offline.training import horizon_objectives", False),
        "shortbias_lib.experiments.offline.training": ("from ...engine import models", False),
        "shortbias_lib.experiments.offline": ("from .training import horizon_objectives", True),
        "shortbias_lib.engine.batches": ("from ..experiments.offline import design", False),
        "shortbias_lib.plots.common": ("import shortbias_lib.experiments.online.loop", False),
        "shortbias_lib.report": ("from .experiments import figure3", False),
        "shortbias_lib.experiments.figure3": ("", False),
        "shortbias_lib.experiments.offline.design": ("", False),
        "shortbias_lib.__main__": ("from .experiments.offline import experiment", False),
        "shortbias_lib.chapters.offline_mnist": ("from ..experiments.offline import experiment", False),
    }
    assert sorted(violations(modules)) == [
        ("shortbias_lib.engine.batches", "shortbias_lib.experiments.offline", "a generic module imports an experiment"),
        ("shortbias_lib.engine.batches", "shortbias_lib.experiments.offline.design",
         "a generic module imports an experiment"),
        ("shortbias_lib.experiments.online.loop", "shortbias_lib.experiments.offline.training",
         "an experiment imports another"),
        ("shortbias_lib.plots.common", "shortbias_lib.experiments.online.loop", "a plot module imports an experiment"),
        ("shortbias_lib.report", "shortbias_lib.experiments.figure3", "a generic module imports an experiment"),
    ]


SUBPACKAGES = sorted(name for name, path in MODULES.items() if path.name == "__init__.py" and name != "shortbias_lib")


def test_the_package_docstring_maps_every_subpackage_and_top_level_module():
    doc = importlib.import_module("shortbias_lib").__doc__
    top = [name for name in MODULES if name.count(".") == 1 or name in SUBPACKAGES and name.count(".") == 1]
    missing = [name for name in top if f"``{name.split('.')[-1]}``" not in doc and
               f"{name.split('.')[-1]}/" not in doc]
    assert missing == []


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_each_subpackage_docstring_names_its_modules(package):
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text()))
    own = [name for name in MODULES if name.rpartition(".")[0] == package]
    assert [name for name in own if f":mod:`.{name.rpartition('.')[2]}`" not in doc] == []

"""Shared test settings: the data root and one torch thread (the fastest setting for small models on 2 cores)."""

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_root():
    """The data folder (``$SHORTBIAS_DATA``); tests that need data fail loudly without it."""
    root = os.environ.get("SHORTBIAS_DATA")
    if not root or not Path(root).is_dir():
        pytest.fail("set SHORTBIAS_DATA to the data folder (MNIST/, cifar10-jpeg/), "
                    "e.g. SHORTBIAS_DATA=../shared/data make test")
    return Path(root)

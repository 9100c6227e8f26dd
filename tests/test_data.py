"""The data layer: MNIST and the CIFAR-10 JPEG copy, and the message when data is missing."""

import pytest
import torch

from shortbias_lib import data
from shortbias_lib.errors import DataNotFoundError


def test_mnist_loads_the_genuine_files_with_the_published_label_counts(data_root):
    train = data.load("mnist", train=True, root=data_root)
    assert train.images.shape == (60000, 1, 28, 28) and train.source == "canonical MNIST files"
    assert 0.0 <= float(train.images.min()) and float(train.images.max()) == 1.0
    counts = torch.bincount(train.labels, minlength=10).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert len(data.load("mnist", train=False, root=data_root)) == 10000


def test_cifar10_jpeg_copy_is_reported_and_class_balanced(data_root):
    test = data.load("cifar10", train=False, root=data_root, limit=200)
    assert test.images.shape == (200, 3, 32, 32)
    assert "JPEG copy" in test.source
    assert torch.bincount(test.labels, minlength=10).tolist() == [20] * 10


def test_missing_data_gives_one_actionable_message(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_try_download", lambda factory: None)  # as if offline
    with pytest.raises(DataNotFoundError, match="MNIST not found under .*looked for"):
        data.load("mnist", root=tmp_path)
    with pytest.raises(DataNotFoundError, match="data root .*does-not-exist does not exist"):
        data.load("mnist", root=tmp_path / "does-not-exist")
    with pytest.raises(ValueError, match="data set must be one of mnist, cifar10"):
        data.load("svhn", root=tmp_path)

"""MNIST and CIFAR-10 as float tensors, from one data root.

The data root is ``$SHORTBIAS_DATA`` (or the ``data_root`` argument),
defaulting to a per-user cache folder. Each loader looks, in order, for

1. the canonical torchvision files (``MNIST/raw/*-ubyte``,
   ``cifar-10-batches-py/``),
2. the offline copies laid out as in the project's shared data folder
   (``cifar10-jpeg/{train,test}/<class>/*.jpg``: exact labels, JPEG pixels),
3. a torchvision download, when ``download`` allows it,

and returns which source it used, so every result can name it.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DataNotFoundError

DATASETS = ("mnist", "cifar10")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class Dataset:
    """Images as float32 in [0, 1] (N, C, H, W), integer labels, and their source."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    source: str

    def __len__(self):
        return len(self.labels)


def default_data_root():
    """The per-user cache folder used when no data root is given."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "shortbias" / "data"


def data_root(override=None):
    """The data root: ``override``, else ``$SHORTBIAS_DATA``, else the user cache.

    Raises :class:`DataNotFoundError` if a root that was asked for does not exist.
    """
    given = override or os.environ.get("SHORTBIAS_DATA")
    if given:
        root = Path(given).expanduser()
        if not root.is_dir():
            raise DataNotFoundError(
                f"data root {root} does not exist: set SHORTBIAS_DATA (or data_root) "
                "to the folder holding MNIST/ and cifar10-jpeg/ or cifar-10-batches-py/")
        return root
    root = default_data_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


def load(name, train=True, root=None, limit=None, download=None):
    """Load data set ``name`` ('mnist' or 'cifar10'); see the module docstring.

    ``limit`` keeps the first ``limit`` examples (for smoke runs);
    ``download=None`` tries torchvision's download only if no local copy exists.
    """
    if name not in DATASETS:
        raise ValueError(f"data set must be one of {', '.join(DATASETS)}; got {name!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive integer or None; got {limit}")
    root = data_root(root)
    loader = _load_mnist if name == "mnist" else _load_cifar10
    return loader(root, train, limit, download)


def _missing(name, root, looked, how):
    return DataNotFoundError(
        f"{name} not found under {root} (looked for {', '.join(looked)}) and could not "
        f"be downloaded: {how}, or set SHORTBIAS_DATA to a folder that has it")


def _try_download(factory):
    try:
        return factory(download=True)
    except Exception:  # no network, blocked host, partial file: all mean "not here"
        return None


def _take(images, labels, limit):
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


def _load_mnist(root, train, limit, download):
    from torchvision.datasets import MNIST

    split = "train" if train else "t10k"
    canonical = root / "MNIST" / "raw" / f"{split}-images-idx3-ubyte"
    dataset = None
    if canonical.exists():
        dataset, source = MNIST(root, train=train, download=False), "canonical MNIST files"
    elif download is not False:
        dataset = _try_download(lambda download: MNIST(root, train=train, download=download))
        source = "canonical MNIST files (downloaded by torchvision)"
    if dataset is None:
        raise _missing("MNIST", root, [str(canonical)],
                       "run torchvision.datasets.MNIST(root, download=True) on a machine "
                       "with internet and copy its MNIST/ folder there")
    images, labels = _take(dataset.data, dataset.targets, limit)
    images = images.unsqueeze(1).to(torch.float32) / 255.0
    return Dataset(images, labels.long(), "mnist", source)


def _load_cifar10(root, train, limit, download):
    from torchvision.datasets import CIFAR10

    canonical = root / "cifar-10-batches-py"
    jpeg = root / "cifar10-jpeg" / ("train" if train else "test")
    dataset = None
    if canonical.is_dir():
        dataset, source = CIFAR10(root, train=train, download=False), "canonical CIFAR-10 files"
    elif jpeg.is_dir():
        images, labels = _read_jpeg_folder(jpeg, limit)
        return Dataset(images, labels, "cifar10", "CIFAR-10, JPEG copy (lossy pixels, exact labels)")
    elif download is not False:
        dataset = _try_download(lambda download: CIFAR10(root, train=train, download=download))
        source = "canonical CIFAR-10 files (downloaded by torchvision)"
    if dataset is None:
        raise _missing("CIFAR-10", root, [str(canonical), str(jpeg)],
                       "run torchvision.datasets.CIFAR10(root, download=True) on a machine "
                       "with internet and copy its cifar-10-batches-py/ folder there")
    images, labels = _take(torch.from_numpy(dataset.data), torch.tensor(dataset.targets), limit)
    images = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    return Dataset(images.contiguous(), labels.long(), "cifar10", source)


def _read_jpeg_folder(folder, limit):
    """Decode an ImageFolder tree in canonical order, interleaving classes.

    Files are taken round-robin over the classes so that the first ``limit``
    examples are class-balanced, like a slice of the shuffled canonical set.
    Decoded arrays are cached next to the user's cache, keyed by folder and limit.
    """
    from PIL import Image

    per_class = [sorted((folder / name).glob("*.jpg")) for name in CIFAR10_CLASSES]
    if not all(per_class):
        raise DataNotFoundError(f"{folder} lacks one of the class folders {CIFAR10_CLASSES}")
    order = [(label, files[i]) for i in range(max(map(len, per_class)))
             for label, files in enumerate(per_class) if i < len(files)]
    order = order[:limit] if limit is not None else order
    cache = default_data_root().parent / "decoded" / (
        f"{folder.parent.name}-{folder.name}-{len(order)}.npz")
    if cache.exists():
        with np.load(cache) as archive:
            pixels, labels = archive["pixels"], archive["labels"]
    else:
        pixels = np.stack([np.asarray(Image.open(path).convert("RGB")) for _, path in order])
        labels = np.array([label for label, _ in order], dtype=np.int64)
        _save_cache(cache, pixels=pixels, labels=labels)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    return images.contiguous(), torch.from_numpy(labels)


def _save_cache(path, **arrays):
    from .runs import save_result

    save_result(path, arrays, {"what": "decoded JPEG cache"})


def run_check(profile="quick", *, device="auto", seed=0, data_root=None, results=None,
              resume=True):
    """Load a few examples of each data set and print where they came from."""
    for name in DATASETS:
        for train in (True, False):
            dataset = load(name, train=train, root=data_root, limit=10)
            split = "train" if train else "test"
            print(f"{name:8s} {split:5s} {tuple(dataset.images.shape[1:])} from {dataset.source}")

"""MNIST and CIFAR-10 as float tensors, from one data root.

The data root is ``$SHORTBIAS_DATA`` (or the ``data_root`` argument),
defaulting to a per-user cache folder. Each loader looks, in order, for

1. the canonical torchvision files (``MNIST/raw/*-ubyte``,
   ``cifar-10-batches-py/``),
2. the offline copies laid out as in the project's shared data folder
   (``cifar10-jpeg/{train,test}/<class>/*.jpg``: exact labels, JPEG pixels),
3. a torchvision download, when ``download`` allows it,

and returns which source it used, so every result can name it, with a fingerprint
of the data it returned (a hash of its pixels and labels), so a result made from
other data is never taken for this one's.

Integrity: the canonical MNIST files are checked against their known SHA-256
checksums; an image that cannot be decoded is named. Either raises a one-line
:class:`~shortbias_lib.errors.DataError`. The decoded CIFAR-10 JPEG copy is cached
(``~/.cache/shortbias/decoded``) under a key made of the resolved folder and the names,
sizes, modification and status-change times of its files (:func:`cache_path`), so another
or an edited copy is decoded afresh; the cache is a result file whose manifest holds a
digest of its pixels and labels (:func:`~shortbias_lib.runs.save_result`), so a damaged or
edited cache is rebuilt (saying so on stderr); an unwritable one is done without.
"""

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DataError, DataNotFoundError, ResultFileError

DATASETS = ("mnist", "cifar10")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
# SHA-256 of the four canonical (uncompressed) MNIST files, as torchvision unpacks them.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_HOW = ("get the canonical files again: run torchvision.datasets.MNIST(root, download=True) "
             "on a machine with internet and copy its MNIST/ folder here")


@dataclass(frozen=True)
class Dataset:
    """Images as float32 in [0, 1] (N, C, H, W), integer labels, their source, and a
    fingerprint of exactly these examples (:func:`fingerprint`; empty if not computed)."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    source: str
    fingerprint: str = ""

    def __len__(self):
        return len(self.labels)


def default_data_root():
    """The per-user cache folder used when no data root is given."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "shortbias" / "data"


def data_root(override=None):
    """The data root: ``override``, else ``$SHORTBIAS_DATA``, else the user cache.

    Raises :class:`DataNotFoundError` if a root that was asked for does not exist or is a file.
    """
    given = override or os.environ.get("SHORTBIAS_DATA")
    if given:
        root = Path(given).expanduser()
        if not root.is_dir():
            what = "is a file, not a folder" if root.exists() else "does not exist"
            raise DataNotFoundError(
                f"data root {root} {what}: set SHORTBIAS_DATA (or data_root) "
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


def fingerprint(pixels, labels):
    """A short hash of a data set's raw pixels (uint8 array) and labels: equal data, equal hash."""
    digest = hashlib.blake2b(digest_size=12)
    for array in (np.ascontiguousarray(pixels), np.ascontiguousarray(labels, dtype=np.int64)):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


_DIGESTS = {}


def _sha256(path):
    """SHA-256 of a file, remembered for the process while the file is unchanged."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def check_mnist_files(raw, splits=("train", "t10k")):
    """Raise :class:`DataError` naming the first canonical MNIST file in folder ``raw`` that is
    missing or differs from the canonical one (SHA-256); torchvision needs all four present."""
    for name, expected in MNIST_SHA256.items():
        path = Path(raw) / name
        if not path.is_file():
            raise DataError(f"MNIST file {path} is missing: {MNIST_HOW}")
        if not name.startswith(tuple(splits)):
            continue
        try:
            digest = _sha256(path)
        except OSError as error:
            raise DataError(f"MNIST file {path} cannot be read ({error.strerror or error})") from error
        if digest != expected:
            raise DataError(f"MNIST file {path} is damaged or not the canonical file (SHA-256 "
                            f"{digest[:12]}..., expected {expected[:12]}...): delete it and "
                            f"{MNIST_HOW}")


def _new_dirs(*folders):
    """The folders of ``folders`` that do not exist yet (deepest first)."""
    return [Path(f) for f in reversed(folders) if not Path(f).exists()]


def _remove_empty(folders):
    """Remove those of ``folders`` that are empty (what a failed download leaves)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


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
    raw = root / "MNIST" / "raw"
    canonical = raw / f"{split}-images-idx3-ubyte"
    dataset = None
    if canonical.exists():
        source = "canonical MNIST files"
    elif download is not False:
        created = _new_dirs(root / "MNIST", raw)
        dataset = _try_download(lambda download: MNIST(root, train=train, download=download))
        if dataset is None:
            _remove_empty(created)
        source = "canonical MNIST files (downloaded by torchvision)"
    if dataset is None and not canonical.exists():
        raise _missing("MNIST", root, [str(canonical)],
                       "run torchvision.datasets.MNIST(root, download=True) on a machine "
                       "with internet and copy its MNIST/ folder there")
    check_mnist_files(raw, (split,))
    if dataset is None:
        try:
            dataset = MNIST(root, train=train, download=False)
        except Exception as error:  # noqa: BLE001 - checked files should load; say where if not
            raise DataError(f"MNIST files in {raw} cannot be read ({type(error).__name__}: "
                            f"{str(error).splitlines()[0] if str(error) else ''}): {MNIST_HOW}") from error
    images, labels = _take(dataset.data, dataset.targets, limit)
    stamp = fingerprint(images.numpy(), labels.numpy())
    images = images.unsqueeze(1).to(torch.float32) / 255.0
    return Dataset(images, labels.long(), "mnist", source, stamp)


def _load_cifar10(root, train, limit, download):
    from torchvision.datasets import CIFAR10

    canonical = root / "cifar-10-batches-py"
    jpeg = root / "cifar10-jpeg" / ("train" if train else "test")
    how = ("run torchvision.datasets.CIFAR10(root, download=True) on a machine "
           "with internet and copy its cifar-10-batches-py/ folder there")
    dataset = None
    if canonical.is_dir():
        try:  # torchvision checks the batches' MD5 sums
            dataset = CIFAR10(root, train=train, download=False)
        except Exception as error:  # noqa: BLE001
            raise DataError(f"CIFAR-10 files in {canonical} are damaged or incomplete "
                            f"({str(error).splitlines()[0] if str(error) else type(error).__name__}): "
                            f"delete the folder and {how}") from error
        source = "canonical CIFAR-10 files"
    elif jpeg.is_dir():
        images, labels, stamp = _read_jpeg_folder(jpeg, limit)
        return Dataset(images, labels, "cifar10", "CIFAR-10, JPEG copy (lossy pixels, exact labels)",
                       stamp)
    elif download is not False:
        created = _new_dirs(canonical)
        dataset = _try_download(lambda download: CIFAR10(root, train=train, download=download))
        if dataset is None:
            _remove_empty(created)
        source = "canonical CIFAR-10 files (downloaded by torchvision)"
    if dataset is None:
        raise _missing("CIFAR-10", root, [str(canonical), str(jpeg)], how)
    pixels, labels = _take(dataset.data, np.asarray(dataset.targets, dtype=np.int64), limit)
    stamp = fingerprint(pixels, labels)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    return Dataset(images.contiguous(), torch.from_numpy(labels), "cifar10", source, stamp)


def _read_jpeg_folder(folder, limit):
    """Decode an ImageFolder tree in canonical order, interleaving classes.

    Files are taken round-robin over the classes so that the first ``limit``
    examples are class-balanced, like a slice of the shuffled canonical set.
    Returns ``(images, labels, fingerprint)``. Decoded arrays are cached in the
    user's cache (:func:`cache_path`).
    """
    per_class = [sorted((folder / name).glob("*.jpg")) for name in CIFAR10_CLASSES]
    lacking = [f"{name}/ ({'empty' if (folder / name).is_dir() else 'missing'})"
               for name, files in zip(CIFAR10_CLASSES, per_class) if not files]
    if lacking:
        raise DataNotFoundError(f"{folder} lacks the .jpg images of its class folder(s) {', '.join(lacking)}: "
                                f"each of {', '.join(CIFAR10_CLASSES)} must hold its images")
    order = [(label, files[i]) for i in range(max(map(len, per_class)))
             for label, files in enumerate(per_class) if i < len(files)]
    order = order[:limit] if limit is not None else order
    cache, source = cache_path(folder, order)
    found = _read_cache(cache, source, len(order))
    if found is not None:
        pixels, labels, stamp = found
    else:
        pixels = np.stack([_decode(path) for _, path in order])
        labels = np.array([label for label, _ in order], dtype=np.int64)
        stamp = fingerprint(pixels, labels)
        _write_cache(cache, source, stamp, pixels=pixels, labels=labels)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    return images.contiguous(), torch.from_numpy(labels), stamp


def cache_dir():
    """Where decoded JPEG copies are cached."""
    return default_data_root().parent / "decoded"


def cache_path(folder, order):
    """``(cache file, resolved source folder)`` for the images ``order``
    (``[(label, path)]``) of ``folder``.

    The key holds each file's name, size, modification time and status-change time
    (``st_ctime``), not its content. ``st_ctime`` is set by the system on every write,
    rename or ``utime`` and cannot be set back, so an image edited in place with its size
    and modification time restored still changes the key. Hashing the contents of the
    60,000 JPEG files (55 MB) was measured at 1.2 s with the files in the page cache and
    8.5 s from disk, against 0.6 s for the ``stat`` calls and about 15 s to decode them all:
    it would cost most of what the cache saves on a cold disk, to catch only edits that
    bypass the file system (a raw device write), so it is not paid.
    """
    source = str(Path(folder).resolve())
    key = hashlib.blake2b(source.encode(), digest_size=10)
    for label, path in order:
        st = path.stat()
        key.update(f"\0{label}/{path.name}/{st.st_size}/{st.st_mtime_ns}/{st.st_ctime_ns}".encode())
    name = f"{Path(folder).parent.name}-{Path(folder).name}-{len(order)}-{key.hexdigest()}.npz"
    return cache_dir() / name, source


def _read_cache(path, source, n):
    """``(pixels, labels, fingerprint)`` from a cache file for ``source``, or ``None``
    (absent, unreadable, or damaged or edited, which its manifest's digests show: such a
    one is removed, saying so)."""
    from .runs import load_result

    if not path.exists():
        return None
    try:
        arrays, meta = load_result(path, expected={"pixels": (n, 32, 32, 3), "labels": (n,)})
        if meta.get("source") != source or not meta.get("fingerprint"):
            raise ResultFileError(f"cache file {path} is not for {source}")
    except ResultFileError as error:
        print(f"shortbias_lib: the decoded-image cache {path} is damaged; decoding the images "
              f"again ({error})", file=sys.stderr)
        try:
            path.unlink()
        except OSError:
            pass
        return None
    except OSError:
        return None  # unreadable: work without it
    return arrays["pixels"], arrays["labels"], meta["fingerprint"]


def _write_cache(path, source, stamp, **arrays):
    from .runs import save_result

    try:
        save_result(path, arrays, {"what": "decoded JPEG cache", "source": source,
                                   "fingerprint": stamp})
    except OSError:
        pass  # a read-only or full cache: the images were decoded, carry on without it


def _decode(path):
    """The RGB pixels (32, 32, 3) of one CIFAR-10 image; :class:`DataError` naming it if it cannot be."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as error:  # PIL's errors for damaged images
        raise DataError(f"CIFAR-10 image {path} cannot be decoded ({error}): replace it with "
                        "the file from a good copy of the data") from error
    if pixels.shape != (32, 32, 3):
        raise DataError(f"CIFAR-10 image {path} has shape {pixels.shape}, not (32, 32, 3): "
                        "replace it with the file from a good copy of the data")
    return pixels


def run_check(profile="quick", *, device="auto", seed=0, data_root=None, results=None,
              resume=True):
    """Load a few examples of each data set and print where they came from.

    The ``data`` command of the CLI: it writes no result file, so its
    :class:`~shortbias_lib.runs.Result` holds no arrays, and ``meta`` the source of each split.
    """
    from .runs import Result, check_seed, resolve_device

    check_seed(seed)
    resolve_device(device)
    sources = {}
    for name in DATASETS:
        for train in (True, False):
            dataset = load(name, train=train, root=data_root, limit=10)
            split = "train" if train else "test"
            sources[f"{name}_{split}"] = dataset.source
            print(f"{name:8s} {split:5s} {tuple(dataset.images.shape[1:])} from {dataset.source}")
    return Result({}, {"profile": profile, "sources": sources})

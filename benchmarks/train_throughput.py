"""Seconds per architecture-epoch of the reference engine on this device.

Three fixed TSS cells (light, mixed, heavy) train on CIFAR-shaped data that
already sits on the device, under the real protocol (batch 256, SGD, NATS-Bench
augmentation, deterministic kernels). Prints a table and writes JSON.

    python benchmarks/train_throughput.py                 # auto device
    python benchmarks/train_throughput.py --images 50000  # a full CIFAR-10 epoch
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from nasforge.data.prepare import MANIFEST
from nasforge.models import cost
from nasforge.protocol import Protocol
from nasforge.spaces import get_space
from nasforge.train import environment
from nasforge.train.reference import train_arch
from nasforge.train.splits import load_splits

CELLS = {
    "light": "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "mixed": "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|",
    "heavy": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
}


def synthetic_cifar(folder: Path, images: int) -> Path:
    """Random CIFAR-shaped uint8 data in the prepared format (speed does not depend on content)."""
    rng = np.random.default_rng(0)
    data = folder / "synthetic"
    data.mkdir(parents=True)
    splits = {"train": images, "valid": max(images // 10, 256)}
    for split, n in splits.items():
        np.save(data / f"{split}_images.npy", rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8))
        np.save(data / f"{split}_labels.npy", rng.integers(0, 10, n).astype(np.int64))
    manifest = {
        "dataset": "synthetic", "num_classes": 10, "shape": [3, 32, 32], "mean": [125.3, 123.0, 113.9],
        "std": [63.0, 62.1, 66.7], "crop_padding": 4, "hflip": True, "eval_splits": ["valid"],
        "splits": {s: {"count": n} for s, n in splits.items()},
    }
    (data / MANIFEST).write_text(json.dumps(manifest))
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=None, help="training images per epoch (default: 50000 on GPU, 2560 on CPU)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per arch; the first is reported as warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_throughput.json"))
    args = parser.parse_args()

    environment.pin(args.threads)
    device = environment.resolve_device(args.device)
    images = args.images or (50_000 if device.type == "cuda" else 2_560)
    space = get_space("tss")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        splits = load_splits(synthetic_cifar(Path(tmp), images), device)
        for name, arch in CELLS.items():
            start = time.perf_counter()
            _, timings = train_arch("tss", space.index(arch), 777, args.epochs, Protocol.nats("12"), splits, device)
            wall = time.perf_counter() - start
            steady = [t["train_seconds"] for t in timings[1:]] or [timings[0]["train_seconds"]]
            per_epoch = float(np.median(steady))
            results.append({
                "cell": name, "arch": arch, "mflops": round(cost("tss", arch)["flops"], 2),
                "train_seconds_per_epoch": round(per_epoch, 4),
                "train_seconds_per_50k_images": round(per_epoch * 50_000 / images, 3),
                "images_per_second": round(images / per_epoch, 1),
                "eval_seconds_per_epoch": round(float(np.median([t["eval_seconds"] for t in timings])), 4),
                "wall_seconds": round(wall, 2),
            })
    env = environment.describe(device)
    host = environment.host()
    report = {"benchmark": "train_throughput", "engine": "reference", "images_per_epoch": images,
              "epochs": args.epochs, "environment": env, "host": host, "results": results}
    where = env["device"] if device.type == "cuda" else f"{host['cpu']}, CPU kernels {env['numerics.cpu_isa']}"
    print(f"reference engine on {where} ({device.type}, {env['threads']} threads), {images} images/epoch")
    print(f"{'cell':<6} {'MFLOPs':>7} {'s/epoch':>9} {'s/50k img':>10} {'img/s':>9}")
    for r in results:
        print(f"{r['cell']:<6} {r['mflops']:>7.1f} {r['train_seconds_per_epoch']:>9.3f} "
              f"{r['train_seconds_per_50k_images']:>10.2f} {r['images_per_second']:>9.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

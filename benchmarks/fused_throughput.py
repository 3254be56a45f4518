"""Reference vs fused engine throughput on the current device: architecture-epochs per second.

Both engines run their real training loops (``train_arch``, ``train_group``)
on the same archs and the same synthetic CIFAR-shaped data, already on the
device. Each runs two epochs and the second (warm) epoch is timed, so
start-up, allocator growth and kernel selection are left out for both.

An "arch-epoch" is one epoch of cifar10-valid's 25,000 training images, so
the projection for NATS-Bench's TSS at hp=12 on cifar10-valid (15,625 archs,
one seed) is ``15625 * 12 / (arch-epochs per second) / 3600`` hours on this
device. Model FLOPs utilisation counts 3 x 2 x MACs per training image
(forward plus a backward twice as dear) against ``--peak-tflops``.

    python benchmarks/fused_throughput.py --device cuda --archs 64 --group 32 --peak-tflops 67
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

import torch

from nasforge.data.loader import Augmentation
from nasforge.models import cost
from nasforge.plan import pack_groups
from nasforge.protocol import Protocol
from nasforge.spaces import get_space
from nasforge.train import environment
from nasforge.train.fused import train_group
from nasforge.train.reference import train_arch
from nasforge.train.splits import Splits

ARCH_EPOCH_IMAGES = 25_000  # cifar10-valid's training split
TSS_ARCHS, HP12_EPOCHS = 15_625, 12


def synthetic_splits(images: int, device: torch.device) -> Splits:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (images, 3, 32, 32), generator=g, dtype=torch.uint8).to(device)
    y = torch.randint(0, 10, (images,), generator=g).to(device)
    augmentation = Augmentation((125.3, 123.0, 113.9), (63.0, 62.1, 66.7), 4, True)
    return Splits((x, y), {}, augmentation, 10, 3, "synthetic")


def warm_epoch_seconds(timings: list[dict]) -> float:
    return timings[-1]["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--archs", type=int, default=8, help="mixed random sample of TSS archs")
    parser.add_argument("--group", type=int, default=8, help="most archs per fused group")
    parser.add_argument("--memory-gb", type=float, default=60.0, help="group memory budget (estimated)")
    parser.add_argument("--images", type=int, default=2048, help="images per timed epoch")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=None, help="device fp32 peak, for MFU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/fused_throughput.json")
    args = parser.parse_args()

    environment.pin(args.threads)
    device = environment.resolve_device(args.device)
    space = get_space("tss")
    archs = sorted(random.Random(args.seed).sample(range(len(space)), args.archs))
    splits = synthetic_splits(args.images, device)
    protocol = Protocol.nats("12").with_overrides({"batch_size": args.batch})
    macs = {i: cost("tss", space.arch(i), 10, 32, 3)["flops"] * 1e6 for i in archs}

    reference_seconds = {}
    for i in archs:
        _, timings = train_arch("tss", i, 777, 2, protocol, splits, device)
        reference_seconds[i] = warm_epoch_seconds(timings)
        print(f"reference arch {i:5d}: {args.images / reference_seconds[i]:8.0f} img/s")
    groups = pack_groups("tss", archs, memory_gb=args.memory_gb, max_size=args.group, batch_size=args.batch)
    fused_seconds = 0.0
    for group in groups:
        results = train_group("tss", group, 777, 2, protocol, splits, device)
        seconds = warm_epoch_seconds(results[0][1]) * len(group)  # train_group reports seconds per member
        fused_seconds += seconds
        print(f"fused group of {len(group):3d}: {len(group) * args.images / seconds:8.0f} img/s")

    arch_epochs = {
        "reference": len(archs) * args.images / ARCH_EPOCH_IMAGES / sum(reference_seconds.values()),
        "fused": len(archs) * args.images / ARCH_EPOCH_IMAGES / fused_seconds,
    }
    train_flops = 6 * sum(macs.values()) * args.images  # 3 passes x 2 FLOPs per MAC
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else environment.describe(device)["device"],
        "device_type": device.type, "torch": torch.__version__, "threads": args.threads,
        "archs": archs, "groups": [len(g) for g in groups], "images_per_epoch": args.images, "batch": args.batch,
        "arch_epochs_per_second": arch_epochs,
        "speedup": arch_epochs["fused"] / arch_epochs["reference"],
        "reference_images_per_second_median": statistics.median(args.images / s for s in reference_seconds.values()),
        "projected_hours_tss_hp12_cifar10_valid": {
            k: TSS_ARCHS * HP12_EPOCHS / v / 3600 for k, v in arch_epochs.items()},
        "achieved_tflops": {"reference": train_flops / sum(reference_seconds.values()) / 1e12,
                            "fused": train_flops / fused_seconds / 1e12},
    }
    if args.peak_tflops:
        report["mfu"] = {k: v / args.peak_tflops for k, v in report["achieved_tflops"].items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: report[k] for k in ("device", "arch_epochs_per_second", "speedup",
                                             "projected_hours_tss_hp12_cifar10_valid", "achieved_tflops")}, indent=2))


if __name__ == "__main__":
    main()

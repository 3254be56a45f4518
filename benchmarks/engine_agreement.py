"""Reference vs fused engine on a real run: the same archs trained by both, final metrics side by side.

    python benchmarks/engine_agreement.py --data results/data --dataset mnist5k --archs 0,9,123,1462 --epochs 1

Both engines follow the same protocol from the same inits; they differ only in
kernel rounding, which these networks amplify over training. This shows how
far that carries the final accuracies (the unit tests pin the arithmetic
itself: float64 agreement to 1e-9 over several steps).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from nasforge.protocol import Protocol
from nasforge.train import environment
from nasforge.train.fused import train_group
from nasforge.train.reference import train_arch
from nasforge.train.splits import load_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("results/data"))
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--archs", default="0,9,123,1462")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/engine_agreement.json")
    args = parser.parse_args()

    environment.pin(args.threads)
    device = environment.resolve_device(args.device)
    archs = [int(a) for a in args.archs.split(",")]
    splits = load_splits(args.data / args.dataset, device)
    protocol = Protocol.nats(f"{args.epochs:02d}").with_overrides({"batch_size": args.batch})
    start = time.perf_counter()
    reference = {i: train_arch("tss", i, args.seed, args.epochs, protocol, splits, device)[0][-1] for i in archs}
    reference_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fused = {i: rows[-1] for i, (rows, _) in zip(archs, train_group("tss", archs, args.seed, args.epochs, protocol,
                                                                     splits, device), strict=True)}
    fused_seconds = time.perf_counter() - start
    rows = []
    for i in archs:
        r, f = reference[i], fused[i]
        rows.append({"arch_index": i, **{f"{k}_{e}": v[k] for k in ("train_loss", "valid_acc", "test_acc")
                                         for e, v in (("reference", r), ("fused", f))}})
        print(f"arch {i:5d}: test acc reference {r['test_acc']:6.2f}  fused {f['test_acc']:6.2f}   "
              f"train loss {r['train_loss']:.5f} / {f['train_loss']:.5f}")
    diffs = [abs(r["test_acc_reference"] - r["test_acc_fused"]) for r in rows]
    report = {"device": environment.describe(device)["device"], "dataset": args.dataset, "epochs": args.epochs,
              "batch": args.batch, "archs": rows, "max_test_acc_difference": max(diffs),
              "mean_test_acc_difference": sum(diffs) / len(diffs),
              "seconds": {"reference": reference_seconds, "fused": fused_seconds}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"max |test acc difference| {max(diffs):.2f} points; seconds reference {reference_seconds:.0f}, "
          f"fused {fused_seconds:.0f}")


if __name__ == "__main__":
    main()

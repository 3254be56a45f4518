"""One SGD step of a NATS-Bench network on fixed data; prints the sha256 of the weights and logits.

Run as a script by tests/test_numerics.py, natively and under QEMU's models of
other CPUs: every kernel family nasforge's training uses (oneDNN 3x3 and 1x1
convolutions, MKL GEMM, ATen's BN, pooling, reductions, cross-entropy, SGD)
runs once, so a CPU-dependent kernel shows as another hash.
"""

import hashlib
import sys

import torch
import torch.nn.functional as F

import nasforge  # noqa: F401 - first: pins the kernels' instruction set before torch loads
from nasforge.models.networks import build_network
from nasforge.train import environment

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def main() -> None:
    environment.pin(1)
    from nasforge.spaces import get_space

    torch.manual_seed(777)
    net = build_network("tss", get_space("tss").index(ARCH), 10, 1).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 16, 16, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (4,), generator=g)
    for _ in range(2):
        loss = F.cross_entropy(net(x)[1], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    digest = hashlib.sha256()
    for tensor in [*net.state_dict().values(), net(x)[1]]:
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    print(digest.hexdigest())


if __name__ == "__main__":
    sys.exit(main())

"""A small distributed training job for fanout: data-parallel linear regression.

Runs on CPU with gloo, or on GPUs with NCCL when CUDA is available. Each rank sees its own shard of
a synthetic dataset; gradients are averaged by DistributedDataParallel, so every rank ends with the
same parameters, which the last line checks with an all_reduce.
"""
import argparse
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def say(line: str) -> None:
    # One write per line: the ranks of a node share one pipe, and print() writes the text and the
    # newline separately when Python is unbuffered, so two ranks' lines could interleave.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)

    torch.manual_seed(1234)
    true_w = torch.randn(8, 1)
    generator = torch.Generator().manual_seed(rank)
    x = torch.randn(256, 8, generator=generator)
    y = x @ true_w + 0.01 * torch.randn(256, 1, generator=generator)
    x, y = x.to(device), y.to(device)

    model = DistributedDataParallel(torch.nn.Linear(8, 1).to(device), device_ids=[local_rank] if cuda else None)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(args.epochs):
        for _ in range(args.steps):
            optimiser.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimiser.step()
        if rank == 0:
            say(f"epoch {epoch + 1}/{args.epochs} loss {loss.item():.5f}")

    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    spread = weights.clone()
    dist.all_reduce(spread, op=dist.ReduceOp.MAX)
    same = torch.allclose(spread, weights)
    say(f"rank {rank}/{world}: parameters identical across ranks: {same}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""Chapter 8's LSTM trained on 2 CPU processes with DDP, ZeRO and FSDP, and
once in one process.

Run ``python ddp_char_lstm.py`` from book/.  Two ranks (gloo, 127.0.0.1, a
free port) each take half of every batch and step graves.torch.RMSpropGraves,
three times over:

- DDP: every rank holds the whole model and optimizer; DDP averages the
  gradients by all-reduce;
- ZeRO: as DDP, but ``ZeroRedundancyOptimizer`` gives each rank the optimizer
  state of part of the parameters and broadcasts the updated parameters;
- FSDP (``fully_shard``): every parameter, its gradient and its optimizer
  state are split between the ranks.

Then this process trains alone, computing the two half-batch gradients itself
and averaging them.  It prints, as JSON, whether each distributed run ends
with the same parameters as the single process, bit for bit.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys
import tempfile

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.fsdp import fully_shard
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel as DDP

import char_lstm as C
import graves.torch as gt

SEEDS, STEPS, BATCH, LENGTH, LR, HIDDEN = [0], 20, 16, 50, 1e-3, 32


def new_model():
    return C.CharLSTMs(SEEDS, len(C.ALPHABET), HIDDEN, clip=1.0)


def batches():
    data = C.encode(C.generate_text(36000))
    # every rank draws the same batches
    rngs = [np.random.default_rng(1000 + s) for s in SEEDS]
    return [C.batch(data, rngs, BATCH, LENGTH) for _ in range(STEPS)]


def halves(x, y, rank):
    h = BATCH // 2
    return x[:, rank * h:(rank + 1) * h], y[:, rank * h:(rank + 1) * h]


def distributed(module, opt, rank):
    for x, y in batches():
        opt.zero_grad()
        # the wrapper averages here
        C.sequence_loss(module, *halves(x, y, rank)).sum().backward()
        opt.step()


def rank_main(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=120))
    torch.set_num_threads(1)
    results = {}

    ddp = DDP(new_model())
    distributed(ddp, gt.RMSpropGraves(ddp.parameters(), lr=LR), rank)
    results["DDP"] = [p.detach() for p in ddp.module.parameters()]

    zero_model = DDP(new_model())
    zero = ZeroRedundancyOptimizer(zero_model.parameters(),
                                   optimizer_class=gt.RMSpropGraves, lr=LR)
    distributed(zero_model, zero, rank)
    results["ZeRO"] = [p.detach() for p in zero_model.module.parameters()]

    fsdp = new_model()
    fully_shard(fsdp)
    distributed(fsdp, gt.RMSpropGraves(fsdp.parameters(), lr=LR), rank)
    # gathers the shards
    results["FSDP"] = [p.full_tensor() for p in fsdp.parameters()]

    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def single_process() -> list[torch.Tensor]:
    torch.set_num_threads(1)
    model = new_model()
    opt = gt.RMSpropGraves(model.parameters(), lr=LR)
    for x, y in batches():
        grads = []
        for rank in (0, 1):
            model.zero_grad()
            C.sequence_loss(model, *halves(x, y, rank)).sum().backward()
            grads.append([p.grad.clone() for p in model.parameters()])
        for p, g0, g1 in zip(model.parameters(), *grads):
            # what the all-reduce computes: g0/2 + g1/2 is the same number
            p.grad = (g0 + g1) / 2
        opt.step()
    return [p.detach() for p in model.parameters()]


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(rank_main, args=(port, out), nprocs=2, join=True)
        ranks = [torch.load(os.path.join(out, f"rank{r}.pt")) for r in (0, 1)]
    alone = single_process()

    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a, b))

    untrained = list(new_model().parameters())
    report = {"processes": 2, "steps": STEPS,
              "trained": not same(alone, untrained)}
    for run in ("DDP", "ZeRO", "FSDP"):
        report[run] = {"ranks_equal": same(ranks[0][run], ranks[1][run]),
                       "equal_to_single_process": same(ranks[0][run], alone)}
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()

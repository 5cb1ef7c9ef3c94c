"""One rank of tests/test_torch_distributed.py (a module of its own, so spawned processes import it).

Every run starts from the same model and sees the same data: a batch of 16 per
step, split into two half-batches, one per rank.  The reference is one process
that computes the gradient of each half-batch and averages the two,
``(g0 + g1) / 2``.  DDP divides each rank's gradient by the world size and sums
the two by all-reduce: ``g0/2 + g1/2``, which is the same number (halving is
exact, and a sum of two terms has one order), so every run must end bitwise
equal to the reference.
"""

from __future__ import annotations

import copy
import datetime
import json
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

import graves.torch as gt

STEPS, RESUME_STEPS, BATCH = 30, 10, 16
HYPER = dict(lr=1e-2, alpha=0.95, momentum=0.9, eps=1e-4)


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
    ).double()


def batches(steps: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(BATCH, 6, generator=g, dtype=torch.float64), torch.randn(BATCH, 1, generator=g, dtype=torch.float64))
            for _ in range(steps)]


def half(batch, rank):
    x, y = batch
    h = BATCH // 2
    return x[rank * h:(rank + 1) * h], y[rank * h:(rank + 1) * h]


def scheduler(opt):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 if t < 10 else 0.3)


def reference_run(model, opt, data):
    """One process: average the two half-batch gradients, then step."""
    sched = scheduler(opt)
    for batch in data:
        grads = []
        for r in (0, 1):
            model.zero_grad()
            x, y = half(batch, r)
            F.mse_loss(model(x), y).backward()
            grads.append([p.grad.clone() for p in model.parameters()])
        for p, g0, g1 in zip(model.parameters(), *grads):
            p.grad = (g0 + g1) / 2
        opt.step()
        sched.step()


def distributed_run(module, opt, data, rank):
    """Each rank its half-batch; the wrapper (DDP or FSDP) averages the gradients."""
    sched = scheduler(opt)
    for batch in data:
        opt.zero_grad()
        x, y = half(batch, rank)
        F.mse_loss(module(x), y).backward()
        opt.step()
        sched.step()


def same(params_a, params_b) -> bool:
    return all(torch.equal(a, b) for a, b in zip(params_a, params_b))


def run(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=120))
    torch.set_num_threads(1)
    results = {}
    data = batches(STEPS + RESUME_STEPS)
    try:
        reference = make_model()
        ref_opt = gt.RMSpropGraves(reference.parameters(), **HYPER)
        reference_run(reference, ref_opt, data[:STEPS])
        ref_params = [p.detach().clone() for p in reference.parameters()]
        results["reference_moved"] = not same(ref_params, make_model().parameters())

        # DDP
        ddp = DDP(make_model())
        distributed_run(ddp, gt.RMSpropGraves(ddp.parameters(), **HYPER), data[:STEPS], rank)
        results["ddp_equal"] = same(ddp.module.parameters(), ref_params)

        # ZeRO: the optimizer state sharded over the ranks
        from torch.distributed.optim import ZeroRedundancyOptimizer

        zmodel = DDP(make_model())
        zero = ZeroRedundancyOptimizer(zmodel.parameters(), optimizer_class=gt.RMSpropGraves, **HYPER)
        owned = sum(len(g["params"]) for g in zero.optim.param_groups)
        results["zero_params_owned"] = owned
        distributed_run(zmodel, zero, data[:STEPS], rank)
        results["zero_equal"] = same(zmodel.module.parameters(), ref_params)
        zero.consolidate_state_dict(to=0)
        if rank == 0:
            state = zero.state_dict()
            single = copy.deepcopy(zmodel.module)
            loaded = gt.RMSpropGraves(single.parameters())
            loaded.load_state_dict(state)
            ref_state = ref_opt.state_dict()
            results["zero_state_equal"] = all(
                torch.equal(state["state"][i][k], ref_state["state"][i][k])
                for i in ref_state["state"] for k in ("step", "n", "g", "delta")
            ) and len(state["state"]) == len(ref_state["state"])
            # both resume for more steps, single-process, from their own copies
            reference_copy = copy.deepcopy(reference)
            ref_opt_copy = gt.RMSpropGraves(reference_copy.parameters())
            ref_opt_copy.load_state_dict(ref_opt.state_dict())
            reference_run(reference_copy, ref_opt_copy, data[STEPS:])
            reference_run(single, loaded, data[STEPS:])
            results["zero_resume_equal"] = same(single.parameters(), reference_copy.parameters())

        # FSDP (fully_shard): parameters and optimizer state sharded
        try:
            from torch.distributed.fsdp import fully_shard

            fmodel = make_model()
            fully_shard(fmodel)
            distributed_run(fmodel, gt.RMSpropGraves(fmodel.parameters(), **HYPER), data[:STEPS], rank)
            full = [p.full_tensor() for p in fmodel.parameters()]
            results["fsdp_equal"] = same(full, ref_params)
        except Exception as error:  # reported, and the test says why it could not run
            results["fsdp_error"] = f"{type(error).__name__}: {error}"
    finally:
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(results, f)
        dist.destroy_process_group()

"""graves.torch under PyTorch's own distributed training: DDP, ZeRO and FSDP on 2 CPU processes.

Two processes are spawned once (gloo backend, 127.0.0.1 and a free port); each
runs tests/torch_distributed_worker.py and writes what it found.  Every
distributed run must end bitwise equal to one process that averages the same
two half-batch gradients.  Skipped without PyTorch.
"""

from __future__ import annotations

import json
import socket

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: graves.torch is not tested")
mp = pytest.importorskip("torch.multiprocessing")
dist = pytest.importorskip("torch.distributed")

if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("this PyTorch build has no gloo backend", allow_module_level=True)

import torch_distributed_worker as worker  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(worker.run, args=(free_port(), str(out)), nprocs=2, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_the_runs_train(ranks):
    assert all(r["reference_moved"] for r in ranks)


def test_ddp_is_bitwise_equal_to_one_process(ranks):
    assert [r["ddp_equal"] for r in ranks] == [True, True]


def test_zero_shards_the_state_and_is_bitwise_equal(ranks):
    owned = [r["zero_params_owned"] for r in ranks]
    assert all(o > 0 for o in owned) and sum(owned) == 6  # each rank owns part of the 6 tensors
    assert [r["zero_equal"] for r in ranks] == [True, True]


def test_zero_consolidated_state_loads_into_one_process(ranks):
    assert ranks[0]["zero_state_equal"] is True
    assert ranks[0]["zero_resume_equal"] is True


def test_fsdp_is_bitwise_equal(ranks):
    errors = [r.get("fsdp_error") for r in ranks]
    assert errors == [None, None], errors
    assert [r["fsdp_equal"] for r in ranks] == [True, True]

"""The package's update beside other libraries' centered RMSprop with momentum, on CPU.

Peers, each measured only where installed (``make bench`` installs them from
requirements-torch.txt and requirements-bench.txt):

- PyTorch ``torch.optim.RMSprop(centered=True, momentum=0.9)``, its for-loop
  (``foreach=False``) and its ``foreach`` implementation, on the same number of
  threads as the package's update (``torch.set_num_threads``);
- Optax ``optax.rmsprop(centered=True, momentum=0.9)``, update and apply under
  one ``jax.jit`` with the parameters and state donated (updated in place), on
  JAX's CPU backend (XLA picks its own threads).

Two workloads, float64 and float32: one array of 10 million parameters, and 5,000
separate arrays of 200.  The libraries place ``eps`` and ``lr`` differently (PyTorch
adds eps outside the root); each makes one read of every array and writes its state,
so the comparison is of speed, not of values.  For the single array the floor
(bytes per parameter over the best streaming bandwidth, on the update's threads) is
measured in the same run, and every time is also given as a ratio to it.

    .venv/bin/python benchmarks/bench_peers.py

Writes benchmarks/results/peers.json.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import graves  # noqa: E402

from common import BYTES_PER_PARAMETER, bandwidth_from, best_times, floor_seconds, save, stream_functions  # noqa: E402
from versions import HYPER  # noqa: E402

SIZE = 10_000_000
KEYS, KEY_SIZE = 5_000, 200
REPEAT = 7


def available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def torch_steps(arrays: list[np.ndarray], grads: list[np.ndarray], threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    fns = {}
    for impl, foreach in (("PyTorch RMSprop, for-loop", False), ("PyTorch RMSprop, foreach", True)):
        params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g.copy())
        opt = torch.optim.RMSprop(
            params, lr=HYPER["lr"], alpha=HYPER["alpha"], eps=HYPER["eps"], momentum=HYPER["momentum"],
            centered=True, foreach=foreach,
        )
        opt.step()  # makes the state
        fns[impl] = opt.step
    return fns


def optax_step(arrays: list[np.ndarray], grads: list[np.ndarray]):
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    import jax.numpy as jnp
    import optax

    tx = optax.rmsprop(
        learning_rate=HYPER["lr"], decay=HYPER["alpha"], eps=HYPER["eps"], centered=True, momentum=HYPER["momentum"]
    )

    def step(params, state, g):
        updates, state = tx.update(g, state, params)
        return optax.apply_updates(params, updates), state

    step = jax.jit(step, donate_argnums=(0, 1))
    box = {"params": [jnp.asarray(a) for a in arrays]}
    g = [jnp.asarray(a) for a in grads]
    box["state"] = tx.init(box["params"])

    def run():
        box["params"], box["state"] = step(box["params"], box["state"], g)
        jax.block_until_ready(box["params"])

    run()  # compiles
    return run, jax.__version__, optax.__version__


def workload(name: str, shapes: list[int], dtype) -> dict:
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
    params = {f"p{i}": a for i, a in enumerate(arrays)}
    grads_d = {f"p{i}": g for i, g in enumerate(grads)}
    opt = graves.RMSpropGraves(**HYPER)
    opt.update(params, grads_d)
    total = sum(shapes)
    threads = opt._runner.threads_for(total)
    fns = {"graves RMSpropGraves.update": lambda: opt.update(params, grads_d)}
    missing = {}
    if available("torch"):
        fns.update(torch_steps(arrays, grads, threads))
    else:
        missing["PyTorch"] = "not installed (make torch)"
    versions = {}
    if available("optax") and available("jax"):
        run, jv, ov = optax_step(arrays, grads)
        fns["Optax rmsprop under jax.jit"] = run
        versions.update(jax=jv, optax=ov)
    else:
        missing["Optax"] = "not installed (make bench installs jax and optax from requirements-bench.txt)"
    if available("torch"):
        import torch

        versions["torch"] = torch.__version__
    streams, moved = stream_functions(total, dtype, threads) if len(shapes) == 1 else ({}, {})
    times = best_times({**fns, **streams}, REPEAT)
    out = {
        "workload": name,
        "dtype": np.dtype(dtype).name,
        "parameters": total,
        "arrays": len(shapes),
        "threads": threads,
        "versions": versions,
        "missing": missing,
        "seconds": {k: v for k, v in times.items() if not k.startswith("stream")},
    }
    mine = times["graves RMSpropGraves.update"]
    out["peer / graves"] = {k: v / mine for k, v in out["seconds"].items() if not k.startswith("graves")}
    if streams:
        bw = bandwidth_from(times, moved)
        floor = floor_seconds(total, dtype, bw["best"])
        out["bandwidth"] = bw
        out["bytes_per_parameter"] = BYTES_PER_PARAMETER[np.dtype(dtype).name]
        out["floor_seconds"] = floor
        out["/ floor"] = {k: v / floor for k, v in out["seconds"].items()}
    return out


def main() -> None:
    rows = []
    for dtype in (np.float64, np.float32):
        for name, shapes in (("one array of 10M", [SIZE]), ("5,000 arrays of 200", [KEY_SIZE] * KEYS)):
            r = workload(name, shapes, dtype)
            rows.append(r)
            print(f"  {r['dtype']}, {name}, {r['threads']} threads: graves {r['seconds']['graves RMSpropGraves.update'] * 1e3:.2f} ms; "
                  + "; ".join(f"{k} {v:.2f}x slower" for k, v in r["peer / graves"].items())
                  + (f"; missing: {r['missing']}" if r["missing"] else ""), flush=True)
    path = save("peers", {"rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Shared helpers for the benchmarks: timing, the memory-bandwidth floor, results files.

Every script times each version as the best of several repetitions, with the
repetitions of all versions interleaved (round 1 of every version, then round
2, ...), so a burst of load from another program slows every version alike
instead of one.  Ratios are taken between figures of the same run; the ratios of
the performance targets within each round, and their median over the rounds
(:func:`floor_ratios`, :func:`paired_ratios`).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from graves.blocks import shared_pool

RESULTS = Path(__file__).resolve().parent / "results"

#: memory passes of one centered step: read w, grad, n, g, delta; write w, n, g, delta
PASSES = 9

#: bytes one centered step with momentum must move per parameter: 9 passes of the dtype
BYTES_PER_PARAMETER = {"float32": PASSES * 4, "float64": PASSES * 8}


def nominal_memory() -> dict:
    """The memory's nominal figure, where the machine tells it: DMI's memory devices
    (``dmidecode -t memory``, which needs root) with their configured speed and bus
    width.  Returns ``{"nominal_GBps": ..., "source": ...}`` or ``{"nominal_GBps": None,
    "why": ...}``."""
    import shutil
    import subprocess

    if shutil.which("dmidecode") is None:
        why = "dmidecode is not installed"
    else:
        try:
            text = subprocess.run(["dmidecode", "-t", "memory"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError) as e:
            text, why = "", f"dmidecode failed: {e}"
        else:
            why = "dmidecode reported no memory device with a speed (root is needed, and a VM may hide them)"
        total = 0.0
        for device in text.split("Memory Device")[1:]:
            fields = dict(line.strip().split(": ", 1) for line in device.splitlines() if ": " in line)
            speed, width = fields.get("Configured Memory Speed", ""), fields.get("Data Width", "")
            if speed.split()[:1] and speed.split()[0].isdigit() and width.split()[:1] and width.split()[0].isdigit():
                total += int(speed.split()[0]) * 1e6 * int(width.split()[0]) / 8  # transfers/s x bytes
        if total:
            return {"nominal_GBps": total / 1e9, "source": "dmidecode -t memory: configured speed x data width, summed"}
    dmi = Path("/sys/firmware/dmi/tables")
    if not dmi.exists():
        why += "; /sys/firmware/dmi/tables is absent (no DMI tables exposed, as in many VMs)"
    return {"nominal_GBps": None, "why": why}


def machine() -> dict:
    """What the figures were measured on."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / f).read_text().strip() for f in ("level", "type", "size"))
        except OSError:
            continue
        if kind != "Instruction":
            caches[f"L{level}"] = size
    return {
        "cpu": model,
        "caches": caches,  # L1, L2 per core; L3 shared
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        # 1-minute load average when the results were saved: above ~0.5 other programs
        # shared the cores (and the memory bus) with the benchmark, and ratios are noisier
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "memory": nominal_memory(),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
    }


def calls_per_sample(fn, min_seconds: float = 0.02) -> int:
    """How many calls make one timed sample last at least ``min_seconds``."""
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    return max(1, int(min_seconds / once) + 1)


def best_times(fns: dict, repeat: int, min_seconds: float = 0.02, rounds: list | None = None) -> dict[str, float]:
    """Best seconds per call of each function in ``fns``, repetitions interleaved.

    ``rounds``: a list to which each round's seconds per call are appended, one dict per
    round, for :func:`paired_ratios` and :func:`floor_ratios`."""
    numbers = {name: calls_per_sample(fn, min_seconds) for name, fn in fns.items()}
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        this = {}
        for name, fn in fns.items():
            number = numbers[name]
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            this[name] = (time.perf_counter() - t0) / number
            best[name] = min(best[name], this[name])
        if rounds is not None:
            rounds.append(this)
    return best


def spread(values: list[float]) -> dict:
    """The median of ``values``, the least and the largest."""
    return {"median": float(np.median(values)), "least": float(min(values)), "largest": float(max(values))}


def paired_ratios(rounds: list[dict], pairs: dict[str, tuple[str, str]]) -> dict[str, dict]:
    """``name -> (a, b)``: a's time over b's, taken round by round (see :func:`floor_ratios`
    for why); per name the median over the rounds, and the least and the largest."""
    return {name: spread([r[a] / r[b] for r in rounds]) for name, (a, b) in pairs.items()}


def _fastest(one_round: dict, moved: dict) -> float:
    """Bytes per second of the round's fastest stream (the keys of ``moved``)."""
    return max(moved[k] / one_round[k] for k in moved)


def round_bandwidths(rounds: list[dict], moved: dict) -> dict:
    """The fastest stream of each round (keys of ``moved``) in bytes per second: its median
    over the rounds, the least and the largest."""
    return spread([_fastest(r, moved) for r in rounds])


def floor_ratios(rounds: list[dict], moved: dict, size: int, dtype, names) -> dict[str, dict]:
    """Each function in ``names`` over the floor, taken round by round: the floor of a round
    comes from that round's fastest stream (the keys of ``moved``, see
    :func:`stream_functions`), timed within a second or so of the function.  On a machine
    shared with other programs the bandwidth they leave can change by a factor of two from
    one minute to the next; a best time of the function and a best time of the streams can
    then come from different minutes, where a ratio within one round cannot.  Per name: the
    median over the rounds, and the least and the largest."""
    out = {name: [] for name in names}
    for r in rounds:
        floor = floor_seconds(size, dtype, _fastest(r, moved))
        for name in names:
            out[name].append(r[name] / floor)
    return {name: spread(v) for name, v in out.items()}


def in_chunks(kernel, arrays, threads: int) -> None:
    """``kernel(*slices)`` on ``threads`` contiguous stretches of ``arrays``, in parallel."""
    size = arrays[0].size
    if threads <= 1:
        kernel(*arrays)
        return
    cuts = [size * t // threads for t in range(threads + 1)]
    parts = [[a[cuts[t] : cuts[t + 1]] for a in arrays] for t in range(threads)]
    futures = [shared_pool().submit(kernel, *p) for p in parts[1:]]
    kernel(*parts[0])
    for f in futures:
        f.result()


def _scale_both(a, b) -> None:
    # Both arrays, one after the other, so that this stream's footprint is the
    # step's, as the copy's and the add's are: over one array alone, half the
    # footprint, part of the array stays in the last-level cache from one call
    # to the next, and the bandwidth comes out higher than memory delivers.
    np.multiply(a, 1.0, out=a)
    np.multiply(b, 1.0, out=b)


#: streaming kernels: name -> (function on (a, b), passes over memory it counts,
#: in arrays of a's length)
STREAMS = {
    "copy": (lambda a, b: np.copyto(a, b), 2),  # read b, write a
    "scale": (_scale_both, 4),  # read and write a, then b
    "add": (lambda a, b: np.add(a, b, out=a), 3),  # read a and b, write a
}


def step_footprint_length(size: int) -> int:
    """Elements in each of two stream arrays that together cover a step's five arrays."""
    return (5 * size + 1) // 2


def stream_arrays(size: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Two new arrays of :func:`step_footprint_length` elements for the streams of a step on
    ``size`` elements: together they are the step's footprint."""
    length = step_footprint_length(size)
    return np.ones(length, dtype), np.ones(length, dtype)


def stream_functions(size: int, dtype, threads: int, tag: str = "", arrays=None) -> tuple[dict, dict]:
    """Streaming kernels for a step on ``size`` elements, ready for :func:`best_times`.

    Returns ``(functions, bytes_moved)``, keyed ``"stream <name><tag>"``.  Timing
    them in the same :func:`best_times` call as the versions they are compared
    with interleaves their repetitions, so load from other programs hits both.
    ``arrays``: two arrays to overwrite; by default two new ones of
    :func:`step_footprint_length` elements, the step's footprint, so that the
    streams stay out of cache whenever the step's arrays do (two arrays of
    ``size`` elements could sit largely in a last-level cache that the step's
    five overflow, and overstate the bandwidth).
    """
    dtype = np.dtype(dtype)
    if arrays is None:
        a, b = stream_arrays(size, dtype)
    else:  # write every page: never-written memory reads as the kernel's shared zero page, too fast
        (a, b) = arrays
        a.fill(1)
        b.fill(1)
    fns, moved = {}, {}
    for name, (kernel, passes) in STREAMS.items():
        key = f"stream {name}{tag}"
        fns[key] = lambda k=kernel: in_chunks(k, (a, b), threads)
        moved[key] = passes * a.size * dtype.itemsize
    return fns, moved


def bandwidth_from(times: dict, moved: dict) -> dict:
    """Each stream's bytes per second, and ``best``, the highest: the floor of a step
    is then the least time the memory system has shown it can move its bytes in."""
    rates = {key.split(" ", 1)[1]: moved[key] / times[key] for key in moved}
    return {"streams": rates, "best": max(rates.values())}


def bandwidth(size: int, dtype, threads: int, repeat: int = 7) -> dict:
    """Streaming bandwidth on two ``size``-element arrays, in bytes per second (see
    :func:`bandwidth_from`), timed on its own."""
    fns, moved = stream_functions(size, dtype, threads)
    return bandwidth_from(best_times(fns, repeat, min_seconds=0), moved)


def floor_seconds(size: int, dtype, bytes_per_second: float) -> float:
    """The one floor every ratio uses: the bytes a step must move, ``size`` parameters
    times :data:`BYTES_PER_PARAMETER` (36 in float32, 72 in float64), over the best
    streaming bandwidth measured in the same run on the same threads."""
    return size * BYTES_PER_PARAMETER[np.dtype(dtype).name] / bytes_per_second


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"machine": machine(), **data}
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    return path

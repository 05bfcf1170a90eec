"""Timing and peak-memory measurement.

* **Time**: implementations of one case are interleaved (the order rotates every round) so that a change
  in machine load hits all of them alike; the Python GC is off while timing. CPU: ``time.perf_counter``
  (wall clock), or with ``clock="cpu"`` ``time.process_time`` (CPU time of all the process's threads:
  on a machine shared with other jobs, one thread's CPU time is far steadier than its wall time; with
  several threads it also counts their spin-waits). CUDA: CUDA events around each call, then a
  synchronisation.
* **Peak memory** (one extra call, outside the timed rounds). CUDA: ``torch.cuda.max_memory_allocated``
  minus the allocation at the call's start. CPU: tracemalloc does not see torch's allocations, and the
  process RSS hides them behind the allocator's caching (freed blocks stay mapped, so RSS deltas mostly
  read 0 after the first call). The torch profiler with ``profile_memory=True`` records every CPU
  allocation and free of torch's allocator with a timestamp; the peak of their running sum is the most
  memory the call held above its starting level (gradient of the input included).
* **Page faults** (CPU, a loop of extra calls): minor faults per call, read from ``getrusage``. Each is a
  page of fresh memory that the allocator had to map (glibc returns freed heap memory above its trim
  threshold to the system, so a call whose buffers land there pays for them again on the next call): a
  cost that the same arithmetic can pay or not depending on the order of allocations.
"""

from __future__ import annotations

import gc
import resource
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor
from torch.profiler import ProfilerActivity, profile

Call = Callable[[], object]


def loss_call(fn: Callable[[Tensor, Tensor], Tensor], logits: Tensor, target: Tensor, backward: bool) -> Call:
    """A no-argument call: forward (+ backward) of ``fn`` on a leaf copy of ``logits``; returns the value."""
    x = logits.detach().clone().requires_grad_(backward)

    def call() -> Tensor:
        if not backward:
            with torch.no_grad():
                return fn(x, target)
        loss = fn(x, target)
        loss.backward()
        x.grad = None  # freed inside the call, so a profiled call sees every allocation it frees
        return loss.detach()

    return call


def _time_once(call: Call, device: torch.device, clock: str) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end)
    timer = time.process_time if clock == "cpu" else time.perf_counter
    start_s = timer()
    call()
    return (timer() - start_s) * 1e3


def time_interleaved(
    calls: dict[str, Call], device: torch.device, rounds: int, reps: int, warmup: int = 2, clock: str = "wall"
) -> dict[str, list[float]]:
    """Milliseconds per call of each entry, interleaved over ``rounds`` rounds of ``reps`` calls."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].extend(_time_once(calls[name], device, clock) for _ in range(reps))
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def summary(ms: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "n": len(ms)}


def peak_memory_bytes(call: Call, device: torch.device) -> int:
    """Peak bytes allocated by torch during one call, above the level at its start."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        call()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() == torch._C._autograd.DeviceType.CPU:
            running += event.nbytes()
            peak = max(peak, running)
    return peak


def page_faults_per_call(call: Call, device: torch.device, n_calls: int = 20) -> float | None:
    """Minor page faults per call (CPU) over ``n_calls`` calls after one warm-up; None on CUDA."""
    if device.type == "cuda":
        return None
    call()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n_calls):
        call()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n_calls


def top_ops(call: Call, n_calls: int = 10, limit: int = 8) -> list[dict[str, float | str]]:
    """Where the time goes: the ``limit`` ops with the most self CPU time over ``n_calls`` calls."""
    call()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n_calls):
            call()
    averages = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in averages) or 1.0
    return [
        {
            "op": e.key,
            "self_ms_per_call": e.self_cpu_time_total / 1e3 / n_calls,
            "share": e.self_cpu_time_total / total,
            "calls_per_call": e.count / n_calls,
        }
        for e in averages[:limit]
    ]

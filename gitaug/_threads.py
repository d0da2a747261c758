"""CPU thread counts that do not fight other processes for the cores."""

from __future__ import annotations

import os
import warnings

import torch

__all__ = ["available_cores", "default_threads", "warn_if_cpu_oversubscribed"]

_warned = False


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """torch's own thread count, but never more than :func:`available_cores`."""
    return max(1, min(torch.get_num_threads(), available_cores()))


def warn_if_cpu_oversubscribed() -> bool:
    """Warn once per process when torch's CPU threads cannot all get a core; returns whether it warned now.

    Two cases: more torch threads than :func:`available_cores`, or a
    one-minute load average above the core count (other processes, e.g.
    data-loader workers, are already using them). OpenMP threads then spin
    waiting for each other and throughput can fall tenfold; fewer threads
    (``torch.set_num_threads``) and ``OMP_WAIT_POLICY=PASSIVE`` help.
    """
    global _warned
    if _warned:
        return False
    cores = available_cores()
    threads = torch.get_num_threads()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    reason = None
    if threads > cores:
        reason = f"torch uses {threads} threads but only {cores} core(s) are available to this process"
    elif threads > 1 and load > cores:
        reason = f"the load average ({load:.1f}) is above the {cores} available core(s) and torch uses {threads} threads"
    if reason is None:
        return False
    _warned = True
    warnings.warn(
        f"{reason}: CPU throughput may collapse. Use fewer threads (torch.set_num_threads, or gitaug-fit "
        "--threads) and set OMP_WAIT_POLICY=PASSIVE; see the README's troubleshooting section.",
        RuntimeWarning,
        stacklevel=3,
    )
    return True

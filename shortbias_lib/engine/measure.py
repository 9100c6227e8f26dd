"""Measurements of hypergradient costs for the book and the benchmarks.

:func:`peak_rss_mib` (peak resident memory of a call), :func:`memory_vs_horizon`
(forward against reverse mode over lookahead lengths) and :func:`step_costs` (seconds per
hypergradient-carrying step against a plain training step).
"""

import math

import numpy as np
import torch

from .hvp import GRAD_HVP, autograd_grad_hvp
from .hypergrad import hypergradient
from .hyperparams import Hyperparameters
from .reference import reverse_hypergradient


def peak_rss_mib(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), peak resident memory in MiB above the level before the call)``.

    Linux only: frees unused heap (``malloc_trim``), resets the kernel's
    high-water mark (``/proc/self/clear_refs``) and reads ``VmHWM``
    afterwards; elsewhere the peak is NaN. Used to measure, not assert,
    that forward mode needs memory constant in T and reverse mode linear.
    """
    import ctypes
    import gc

    def read(key):
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024
        raise OSError(key)

    try:
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        base = read("VmRSS")
    except OSError:
        return fn(*args, **kwargs), float("nan")
    out = fn(*args, **kwargs)
    return out, read("VmHWM") - base


def memory_vs_horizon(apply, state, hyper, batches, eval_batches, horizons, convention="paper"):
    """Peak resident memory (MiB) of forward and reverse mode for each lookahead length T.

    Lookahead ``T`` cycles through ``batches``. Returns ``(forward, reverse)`` arrays.
    """
    forward, reverse = [], []
    for T in horizons:
        look = [batches[t % len(batches)] for t in range(T)]
        reverse.append(peak_rss_mib(reverse_hypergradient, apply, state, hyper, look,
                                    eval_batches, convention)[1])
        forward.append(peak_rss_mib(hypergradient, apply, state, hyper, look,
                                    eval_batches, convention)[1])
    return np.asarray(forward), np.asarray(reverse)


def step_costs(apply, state, batches, steps=20, repeats=3, learn_sets=(("lr",), ("lr", "momentum")),
               lr=0.1, momentum=0.9):
    """Seconds per step: plain training and hypergradient-carrying steps (best of interleaved repeats).

    Uses process CPU time on the CPU (less disturbed by other processes on a
    shared machine), wall time with a CUDA synchronisation on the GPU. Keys:
    ``"plain"``, one per learned set (e.g. ``"lr"``, ``"lr+momentum"``) and
    ``"lr, double backward"`` (the generic path, when ``apply`` has a fast path).
    """
    import time

    from .training import train

    device = state.params[0].device
    cuda = device.type == "cuda"
    clock = time.perf_counter if cuda else time.process_time
    look = [batches[t % len(batches)] for t in range(steps)]
    # Each run gets its own copy of the state, made outside the timing (train() updates
    # the state it is given in place).
    runs = {"plain": lambda s: train(apply, s, batches, steps, lr, momentum)}
    for learn in learn_sets:
        hyper = Hyperparameters(lr, momentum, learn=tuple(learn))
        runs["+".join(learn)] = (lambda h: lambda s: hypergradient(apply, s, h, look, batches[:1]))(hyper)
    if apply in GRAD_HVP:
        hyper = Hyperparameters(lr, momentum, learn=("lr",))
        runs["lr, double backward"] = lambda s: hypergradient(apply, s, hyper, look, batches[:1],
                                                              grad_hvp=autograd_grad_hvp(apply))
    best = {name: math.inf for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            fresh = state.clone()
            if cuda:
                torch.cuda.synchronize()
            start = clock()
            fn(fresh)
            if cuda:
                torch.cuda.synchronize()
            best[name] = min(best[name], (clock() - start) / steps)
    return best

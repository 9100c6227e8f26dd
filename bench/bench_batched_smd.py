"""Batched online SMD meta steps (``batched_smd``) against separate runs, and compiled against eager.

Run: ``python bench/bench_batched_smd.py [--device auto|cpu|cuda] [--runs 5] [--meta-steps 10]``.

The MNIST MLP (784-100-100-10), batch 100, lookahead T = 5 with 5 fresh evaluation
batches (online SMD's stochastic meta step), P = 2. **Synthetic tensors of MNIST's
shape** (uniform pixels, random labels): the timings are valid, the losses mean nothing.
Prints, measured in one run:

1. one meta step of S runs: ``torch.compile``'d :func:`~shortbias_lib.engine.batched_smd.meta_step`
   against the eager one (ratio; compile time apart; on CUDA ``mode="reduce-overhead"``);
2. S runs batched (:func:`~shortbias_lib.engine.batched_smd.smd_batched`, eager) against S
   separate runs of :func:`~shortbias_lib.engine.hypergrad.smd` (the engine online SMD uses);
3. the time per meta step of each.

Timings take the best of interleaved repeats (process CPU time on the CPU, wall time
with synchronisation on CUDA), because the machine may be shared.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
# The GPU machine runs a copy of the tree without installing the package: import it (and bench_smd) from here.
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from bench_smd import best_of  # noqa: E402  (one timing loop for the benchmarks)
from shortbias_lib.engine import batched_smd as bs  # noqa: E402
from shortbias_lib.engine.batches import BatchSampler  # noqa: E402
from shortbias_lib.engine.hypergrad import smd  # noqa: E402
from shortbias_lib.engine.hyperparams import Hyperparameters  # noqa: E402
from shortbias_lib.engine.meta_optim import Adam  # noqa: E402
from shortbias_lib.engine.models import mlp_apply, mlp_init  # noqa: E402
from shortbias_lib.runs import resolve_device  # noqa: E402
from shortbias_lib.engine.training import init_state  # noqa: E402

T = 5


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--runs", type=int, default=5, help="S, the runs advanced together")
    parser.add_argument("--meta-steps", type=int, default=10, help="meta steps per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled meta step")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    S, M = args.runs, args.meta_steps
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6000, 1, 28, 28, generator=g)
    labels = torch.randint(0, 10, (6000,), generator=g)
    states = [init_state(mlp_init(g, init_std=0.1, device=device)) for _ in range(S)]
    lrs = np.geomspace(1e-3, 1e-1, S)
    hypers = [Hyperparameters(float(a), 0.9) for a in lrs]
    samplers = [BatchSampler(images, labels, 100, seed=s, device=device) for s in range(S)]
    drawn = bs.draw_meta_batches(samplers, M, T, T)
    # the same batches as lists for the separate runs
    per_run = [[None] * M for _ in range(S)]
    for m in range(M):
        look_x, look_y, eval_x, eval_y = drawn.at(m)
        for s in range(S):
            per_run[s][m] = ([(look_x[s, i], look_y[s, i]) for i in range(T)],
                             [(eval_x[s, i], eval_y[s, i]) for i in range(T)])
    params, velocity = bs.stack_runs(states)
    u0 = np.stack([h.vector() for h in hypers])

    def separate():
        for s in range(S):
            smd(mlp_apply, states[s], hypers[s], T, M, lambda m, s=s: per_run[s][m], optimizer=Adam(1e-2))

    def batched(step=None):
        return bs.smd_batched(params, velocity, u0, M, drawn.at, step=step)

    functions = {"separate": separate, "batched eager": batched}
    compile_s = None
    if not args.no_compile:
        mode = "reduce-overhead" if device.type == "cuda" else None
        step = bs.compiled_meta_step(mode=mode, fullgraph=True)
        start = time.perf_counter()
        batched(step)  # compiles at the first call
        batched(step)
        compile_s = time.perf_counter() - start
        if step.compiled:
            functions["batched compiled"] = lambda: batched(step)
        else:
            print(f"compiled meta step fell back to eager: {step.reason}")
    best_of(functions, 1, device)  # warm-up
    best = best_of(functions, args.repeats, device)
    clock = "process CPU time, 1 thread" if device.type == "cpu" else "wall time"
    print(f"device {device}, torch {torch.__version__}, S = {S} runs, {M} meta steps per call, "
          f"T = {T}, batch 100, MNIST MLP, synthetic data; best of {args.repeats} ({clock})")
    for name, seconds in best.items():
        print(f"  {name:17s} {1e3 * seconds / M:8.2f} ms per meta step of {S} runs "
              f"= {1e3 * seconds / (M * S):6.2f} ms per run-meta-step")
    print(f"batched S={S} (eager) / {S} separate eager runs: speed-up "
          f"{best['separate'] / best['batched eager']:.2f} (time separate / time batched; > 1: batched faster)")
    if "batched compiled" in best:
        print(f"compiled / eager meta step: speed-up {best['batched eager'] / best['batched compiled']:.2f} "
              f"(time eager / time compiled; compiling took {compile_s:.1f} s wall)")


if __name__ == "__main__":
    main()

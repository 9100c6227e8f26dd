"""Benchmark: the whole Figure 3 computation (greedy, fixed, optimized; noisy and deterministic).

Prints wall and CPU seconds per part, the ratio to the 20 s target, and the
cost of one fitted step of the NumPy adjoint relative to autograd through
``dynamics`` (same numbers, checked in the tests). Run:
``OMP_NUM_THREADS=1 python bench/bench_noisy_quadratic.py``.

Last recorded (2-core development machine shared with other jobs, load about 5):
Figure 3 in 18.1 s CPU (0.90 of the 20 s target), 37 s wall; one bounded
loss+gradient 29 ms with the NumPy adjoint against 244 ms with autograd.
On an idle machine wall time is close to CPU time (one thread).
"""

import time

import numpy as np
import torch

from shortbias_lib import noisy_quadratic as nq

TARGET_S = 20.0


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main():
    torch.set_num_threads(1)
    p = nq.make_problem()
    s2 = torch.stack([p.sigma2, torch.zeros_like(p.sigma2)])
    a = torch.full((2, p.horizon), 0.01, dtype=torch.float64)
    m = torch.full((2, p.horizon), 0.9, dtype=torch.float64)

    def autograd_step():
        at, mt = a.clone().requires_grad_(), m.clone().requires_grad_()
        losses, _, _ = nq.dynamics(p.h, s2, p.mean0, p.var0, at, mt, bound=True)
        losses[..., -1].sum().backward()

    _, w_auto, c_auto = timed(lambda: [autograd_step() for _ in range(3)])
    _, w_adj, c_adj = timed(lambda: [nq.final_loss_grad(p.h, s2, p.mean0, p.var0, a, m, bound=True)
                                     for _ in range(10)])
    print(f"one loss+gradient (2 problems, T=250, d=1000, bound): autograd {c_auto / 3 * 1e3:.1f} ms CPU, "
          f"NumPy adjoint {c_adj / 10 * 1e3:.1f} ms CPU, ratio {c_auto / 3 / (c_adj / 10):.1f}x")
    result, wall, cpu = timed(nq.figure3)
    for name, t in zip(nq.SCHEDULES, result["timings"]):
        print(f"  {name:9s} {t:6.2f} s wall")
    print(f"Figure 3 (noisy + deterministic, {nq.FIGURE3_FIT['steps']} Adam steps): "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU; CPU / target = {cpu / TARGET_S:.2f} "
          f"(target {TARGET_S:.0f} s on 2 cores)")
    print("final losses (optimized, greedy, fixed):", np.round(result["final_losses"], 3),
          "paper:", result["paper_final_losses"])


if __name__ == "__main__":
    main()

"""Benchmark: the whole Figure 3 computation (greedy, fixed, optimized; noisy and deterministic).

Prints, from one run: the CPU and wall seconds of each part of ``figure3()``
(greedy, the global best fixed schedule, the converged L-BFGS fits, on the
soft bound in stages, with the unconstrained one) and their ratio to the 5 s target; the cost of one
loss-and-gradient evaluation (NumPy adjoint with the exact bound, the soft
bound and none, against autograd through ``dynamics``: the same numbers,
checked in the tests), which bounds how fast
any fit can be; and the numbers the fits reach. Run:
``OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python bench/bench_noisy_quadratic.py``.
"""

import time

import numpy as np
import torch

from shortbias_lib.experiments import figure3 as nq
from shortbias_lib.nqm.dynamics import dynamics
from shortbias_lib.nqm.adjoint import adjoint
from shortbias_lib.nqm.problem import make_problem

TARGET_S = 5.0


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main():
    torch.set_num_threads(1)
    p = make_problem()
    a = np.full((1, p.horizon), 0.01)
    m = np.full((1, p.horizon), 0.9)
    arrays = [x.numpy()[None] for x in p.arrays]

    def autograd_step():
        at, mt = torch.tensor(a, requires_grad=True), torch.tensor(m, requires_grad=True)
        losses, _, _ = dynamics(*p.arrays, at, mt, bound=True)
        losses[..., -1].sum().backward()

    _, _, c_auto = timed(lambda: [autograd_step() for _ in range(3)])
    _, _, c_adj = timed(lambda: [adjoint(*arrays, a, m, bound=True) for _ in range(10)])
    _, _, c_soft = timed(lambda: [adjoint(*arrays, a, m, bound=True, sharpness=300.0)
                               for _ in range(10)])
    _, _, c_free = timed(lambda: [adjoint(*arrays, a, m, bound=False) for _ in range(10)])
    print(f"one loss+gradient (T=250, d=1000): NumPy adjoint {c_adj / 10 * 1e3:.1f} ms CPU with the "
          f"exact bound, {c_soft / 10 * 1e3:.1f} ms with the soft one (p = 300), "
          f"{c_free / 10 * 1e3:.1f} ms without; autograd {c_auto / 3 * 1e3:.1f} ms "
          f"({c_auto / 3 / (c_adj / 10):.1f}x the adjoint)")
    r, wall, cpu = timed(nq.figure3)
    for name, t in zip(nq.SCHEDULES, r["timings"]):
        print(f"  {name:9s} {t:6.2f} s wall")
    print(f"Figure 3 (noisy + deterministic, converged fits): {wall:.1f} s wall, {cpu:.1f} s CPU; "
          f"CPU / target = {cpu / TARGET_S:.1f} (target {TARGET_S:.0f} s on 2 cores)")
    det = r["final_losses_deterministic"]
    print(f"3(a) optimized {r['final_losses'][0]:.4f} after {r['start_iterations'][0, 1]} L-BFGS "
          f"iterations in all (last stage's stopping rule fired: {bool(r['start_converged'][0, 1])}); "
          f"unconstrained {float(r['unconstrained_final']):.4f} after "
          f"{int(r['unconstrained_iterations'])} (fired: {bool(r['unconstrained_converged'])}); "
          f"greedy {r['final_losses'][1]:.2f}; best fixed {r['final_losses'][2]:.3f}")
    print(f"3(b) optimized / greedy = {det[0] / det[1]:.6f} (winning start: "
          f"{r['starts'][r['winner'][1]]}); best fixed {det[2]:.3e} = {det[2] / det[1]:.0f}x greedy")


if __name__ == "__main__":
    main()

"""Speed and memory of the SMD engine, as ratios measured in one run.

Run: ``python bench/bench_smd.py [--device auto|cpu|cuda] [--quick]``.

Prints
1. plain training (``training.train``) against a minimal hand-written torch loop;
2. one hypergradient-carrying step (``hypergrad.hypergradient``) against a plain
   step of the same model and batch, for 1 and 2 hyperparameters, with the
   generic double-backward path and ``torch.func.jvp`` of a whole step for reference;
3. peak memory of forward mode at T = 100 and T = 10,000 steps (a small MLP,
   784-32-10, batch 20, so 10k steps take seconds), and of reverse mode
   through the unroll at several T;
4. ``training.train_batched`` over S schedules against S separate runs.

Targets (issue 4): hypergradient step <= 2x plain step; plain training within
1.2x of the hand loop; forward-mode memory at 10k steps no larger than at 100.
Timings take the best of interleaved repeats, because the machine is shared.
"""

import argparse
import time

import torch
import torch.nn.functional as F

from shortbias_lib.engine.hvp import autograd_grad_hvp
from shortbias_lib.engine.hypergrad import hypergradient
from shortbias_lib.engine.hyperparams import Hyperparameters
from shortbias_lib.engine.measure import peak_rss_mib
from shortbias_lib.engine.reference import reverse_hypergradient
from shortbias_lib.engine.models import loss_fn, mlp_apply, mlp_init
from shortbias_lib.runs import resolve_device
from shortbias_lib.engine.schedules import InverseTime
from shortbias_lib.engine.training import init_state, train, train_batched


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_of(functions, repeats, device):
    """Interleave the functions ``repeats`` times; return each one's best time.

    On the CPU (one thread) this is process CPU time, which other processes on
    a shared machine disturb less than wall time; on CUDA it is wall time.
    """
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            sync(device)
            start = clock()
            fn()
            sync(device)
            best[name] = min(best[name], clock() - start)
    return best


def hand_loop(params, batches, steps, lr=0.1, mu=0.9):
    """The minimal loop: forward, autograd.grad, in-place heavy-ball update."""
    w = [p.detach().clone().requires_grad_(True) for p in params]
    v = [torch.zeros_like(p) for p in w]
    for t in range(steps):
        x, y = batches[t % len(batches)]
        h = x.reshape(x.shape[0], -1)
        h = F.relu(F.linear(h, w[0], w[1]))
        h = F.relu(F.linear(h, w[2], w[3]))
        loss = F.cross_entropy(F.linear(h, w[4], w[5]), y)
        grads = torch.autograd.grad(loss, w)
        with torch.no_grad():
            for p, m, g in zip(w, v, grads):
                m.mul_(mu).add_(g)
                p.sub_(m, alpha=lr)
    return w


def jvp_whole_step(params, batches, steps, lr=0.1, mu=0.9):
    """Reference: torch.func.jvp of an entire step with respect to the learning rate."""
    import warnings

    from torch.func import grad, jvp

    def step(w, v, alpha, x, y):
        g = grad(lambda p: loss_fn(mlp_apply, p, x, y))(w)
        nv = tuple(mu * a - alpha * b for a, b in zip(v, g))
        return tuple(a + b for a, b in zip(w, nv)), nv

    w = tuple(p.detach() for p in params)
    v = tuple(torch.zeros_like(p) for p in w)
    dw = tuple(torch.zeros_like(p) for p in w)
    dv = tuple(torch.zeros_like(p) for p in w)
    alpha = torch.tensor(lr, dtype=w[0].dtype, device=w[0].device)
    one = torch.ones_like(alpha)
    with warnings.catch_warnings():  # torch.func.jvp scripts a decomposition: a FutureWarning
        warnings.simplefilter("ignore", FutureWarning)
        for t in range(steps):
            x, y = batches[t % len(batches)]
            (w, v), (dw, dv) = jvp(lambda a, b, c: step(a, b, c, x, y), (w, v, alpha), (dw, dv, one))
    return w


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    steps, repeats = (30, 3) if args.quick else (100, 5)
    gen = torch.Generator().manual_seed(0)
    params = mlp_init(gen, device=device)
    images = torch.rand(1000, 1, 28, 28, generator=gen).to(device)
    labels = torch.randint(0, 10, (1000,), generator=gen).to(device)
    batches = [(images[i:i + 100], labels[i:i + 100]) for i in range(0, 1000, 100)]
    state = init_state(params)
    print(f"device: {device}; MLP 784-100-100-10, batch 100, {steps} steps, best of {repeats}, "
          f"torch threads {torch.get_num_threads()}")

    # 1 and 2: time per step.
    hyper1 = Hyperparameters(0.1, 0.9, learn=("lr",))
    hyper2 = Hyperparameters(0.1, 0.9, learn=("lr", "momentum"))
    look = [batches[t % 10] for t in range(steps)]
    generic = autograd_grad_hvp(mlp_apply)
    jvp_steps = max(steps // 5, 5)
    times = best_of({
        "hand loop": lambda: hand_loop(params, batches, steps),
        "train (heavy_ball)": lambda: train(mlp_apply, state, batches, steps, 0.1, 0.9, "heavy_ball"),
        "train (paper)": lambda: train(mlp_apply, state, batches, steps, 0.1, 0.9, "paper"),
        "hypergradient, 1 hyperparameter": lambda: hypergradient(mlp_apply, state, hyper1, look, batches[:1]),
        "hypergradient, 2 hyperparameters": lambda: hypergradient(mlp_apply, state, hyper2, look, batches[:1]),
        "hypergradient, 1, double backward": lambda: hypergradient(mlp_apply, state, hyper1, look, batches[:1],
                                                                    grad_hvp=generic),
        "torch.func.jvp of a whole step": lambda: jvp_whole_step(params, batches, jvp_steps),
    }, repeats, device)
    per_step = {k: v / (jvp_steps if k.startswith("torch.func") else steps) for k, v in times.items()}
    plain = per_step["train (paper)"]
    print("\n== time per step (ms) and ratio ==")
    for name, value in per_step.items():
        base = per_step["hand loop"] if name.startswith("train") else plain
        against = "hand loop" if name.startswith("train") else "plain step"
        print(f"{name:36s} {1e3 * value:8.3f} ms   {value / base:5.2f}x {against}")
    ratio_train = max(per_step["train (paper)"], per_step["train (heavy_ball)"]) / per_step["hand loop"]
    ratio_hyper = per_step["hypergradient, 1 hyperparameter"] / plain
    print(f"RATIO plain training / hand loop: {ratio_train:.2f} (target <= 1.2)")
    print(f"RATIO hypergradient step (1 hyperparameter) / plain step: {ratio_hyper:.2f} (target <= 2)")
    print(f"RATIO hypergradient step (2 hyperparameters) / plain step: "
          f"{per_step['hypergradient, 2 hyperparameters'] / plain:.2f}")

    # 3: memory.
    if device.type == "cpu":
        print("\n== peak resident memory above baseline (MiB) ==")
        small = mlp_init(torch.Generator().manual_seed(1), sizes=(784, 32, 10))
        small_batches = [(images[i:i + 20].cpu(), labels[i:i + 20].cpu()) for i in range(0, 200, 20)]
        small_state = init_state(small)
        long_T = 2000 if args.quick else 10000
        for T in (100, long_T):
            look_T = [small_batches[t % 10] for t in range(T)]
            start = time.perf_counter()
            _, peak = peak_rss_mib(hypergradient, mlp_apply, small_state, hyper2, look_T, small_batches[:1])
            print(f"forward mode, 784-32-10, T = {T:6d}: {peak:7.1f} MiB ({time.perf_counter() - start:.1f} s)")
            if T == 100:
                first = peak
        print(f"RATIO forward-mode memory T={long_T} / T=100: {peak / max(first, 1e-9):.2f} (target <= 1); "
              f"difference {peak - first:.2f} MiB, of which the per-step loss record "
              f"{8 * (long_T - 100) / 2 ** 20:.2f} MiB")
        for T in (10, 50, 100, 200):
            look_T = [batches[t % 10] for t in range(T)]
            _, rev = peak_rss_mib(reverse_hypergradient, mlp_apply, state, hyper2, look_T, batches[:1])
            _, fwd = peak_rss_mib(hypergradient, mlp_apply, state, hyper2, look_T, batches[:1])
            print(f"784-100-100-10, T = {T:4d}: reverse {rev:7.1f} MiB, forward {fwd:6.1f} MiB")
    else:
        print("\n== peak CUDA memory (MiB) ==")
        for T in (100, 1000):
            look_T = [batches[t % 10] for t in range(T)]
            for name, fn in (("forward", hypergradient), ("reverse", reverse_hypergradient)):
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                try:
                    fn(mlp_apply, state, hyper2, look_T, batches[:1])
                    peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
                except RuntimeError as err:  # out of memory, or reverse mode of CPU-only u
                    peak = float("nan")
                    print(f"  ({name} at T={T} failed: {str(err).splitlines()[0]})")
                print(f"{name} mode, T = {T:5d}: {peak:8.1f} MiB")

    # 4: batched runs.
    S = 8 if args.quick else 32
    batched_steps = 20 if args.quick else 50
    alpha0 = torch.logspace(-3, -0.3, S, device=device)
    beta = torch.logspace(-2, 2.3, S, device=device)
    schedule = InverseTime(alpha0, beta, K=5000)

    def separate():
        for s in range(S):
            train(mlp_apply, state, batches, batched_steps,
                  InverseTime(float(alpha0[s]), float(beta[s]), K=5000), 0.9)

    def together():
        train_batched(mlp_apply, params, schedule, batched_steps, batches, 0.9,
                      record_steps=[batched_steps])

    times = best_of({"separate": separate, "train_batched": together}, max(2, repeats // 2), device)
    print(f"\n== {S} inverse-time schedules x {batched_steps} steps ==")
    print(f"separate runs {times['separate']:.3f} s, train_batched {times['train_batched']:.3f} s")
    print(f"RATIO separate / batched: {times['separate'] / times['train_batched']:.2f} "
          "(speed-up of one vmapped computation)")


if __name__ == "__main__":
    main()

"""The offline experiment's engines at the paper's time scale, as ratios measured in one run.

Run: ``python bench/bench_sweep.py [--device auto|cpu|cuda] [--quick] [--samples S]``.

Prints
(a) sample-steps per second of ``training.train_batched`` with S schedules
    (default 64, inverse-time decay drawn as the offline sweep draws them)
    against the same schedules run one at a time with ``training.train``, on
    the 784-100-100-10 MLP with batches of 100: real MNIST (``StepBatches``,
    as the sweep uses) when ``$SHORTBIAS_DATA`` holds it, else synthetic
    tensors of the same shapes (the output says which);
(b) the effective GFLOP/s of the batched sweep. FLOPs per sample-step (one
    run, one SGD step, batch B), counting the matrix products only
    (elementwise work, softmax and biases are left out)::

        forward   2 B sum_l n_in(l) n_out(l)
        backward  2 B sum_l n_in(l) n_out(l)        (weight gradients)
                + 2 B sum_{l>=2} n_in(l) n_out(l)   (input gradients; none for the input layer)

    for 784-100-100-10 and B = 100: sum_l = 89,400, sum_{l>=2} = 11,000, so
    2 * 100 * (2 * 89,400 + 11,000) = 37.96 MFLOP per sample-step;
(c) peak memory of the offline SMD's forward-mode hypergradient
    (``hypergrad.hypergradient``, learning ``(log alpha_0/(1-mu), log beta)``)
    at lookahead T = 5000 against T = 100, the batches drawn lazily from
    ``StepBatches`` (a generator, one batch held at a time): peak
    resident memory above the level before the call
    (``measure.peak_rss_mib``) on the CPU, peak allocated CUDA memory on
    the GPU. Target: ratio <= 1.2;
(d) the hypergradient step against a plain step (``measure.step_costs``)
    with 1 (lr) and 2 (lr, momentum) hyperparameters. Target: <= 2.0.

Timings on the CPU are process CPU time with one torch thread (the machine
is shared), best of interleaved repeats; on CUDA, wall time with
synchronisation.
"""

import argparse
import os
import time

import torch

from shortbias_lib.engine import hypergrad, hyperparams, measure
from shortbias_lib.experiments.offline import design as offline_design
from shortbias_lib.engine.models import MNIST_SIZES, mlp_apply, mlp_init
from shortbias_lib.runs import resolve_device
from shortbias_lib.engine.batches import StepBatches
from shortbias_lib.engine.schedules import InverseTime
from shortbias_lib.engine.training import init_state, train, train_batched

BATCH = 100
K = 5000.0
MOMENTUM = 0.9


def flops_per_sample_step(sizes=MNIST_SIZES, batch=BATCH):
    """Matrix-product FLOPs of one SGD step of one run (see the module docstring)."""
    pairs = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * batch * (2 * sum(pairs) + sum(pairs[1:]))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def clock(device):
    return time.process_time if device.type == "cpu" else time.perf_counter


def mnist_or_synthetic(device, data_root=None, synthetic=False, n=60000, seed=0):
    """``(images, labels, source)``: MNIST's training set on ``device`` if it can be found
    (``data_root`` or ``$SHORTBIAS_DATA``), else ``n`` synthetic images of MNIST's shape."""
    if not synthetic and (data_root or os.environ.get("SHORTBIAS_DATA")):
        from shortbias_lib.data import load

        data = load("mnist", train=True, root=data_root, download=False)
        return data.images.to(device), data.labels.to(device), f"MNIST ({data.source})"
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 28, 28, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return images.to(device), labels.to(device), f"synthetic tensors of MNIST's shape ({n} images)"


def sweep_schedules(S, seed=0):
    """S inverse-time schedules drawn as the offline sweep draws them (float64, on the CPU)."""
    log_a, log_b = offline_design.sample_hyperparameters(S, seed)
    return torch.as_tensor(10.0 ** log_a), torch.as_tensor(10.0 ** log_b)


def time_batched(params, alpha0, beta, steps, batches, device, repeats=1):
    """Best seconds of ``train_batched`` over ``steps`` steps of ``len(alpha0)`` schedules."""
    schedule = InverseTime(alpha0, beta, K)
    tick = clock(device)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = tick()
        train_batched(mlp_apply, params, schedule, steps, batches, MOMENTUM, record_steps=[])
        sync(device)
        best = min(best, tick() - start)
    return best


def time_separate(params, alpha0, beta, steps, batches, device):
    """``(seconds, steps taken)`` of the same schedules run one at a time by ``train``."""
    tick = clock(device)
    taken = 0
    sync(device)
    start = tick()
    for a, b in zip(alpha0.tolist(), beta.tolist()):
        result = train(mlp_apply, params, batches, steps, InverseTime(a, b, K), MOMENTUM)
        taken += len(result.losses)  # a run that diverges stops early: count what ran
    sync(device)
    return tick() - start, taken


def hypergradient_peak(state, images, labels, T, eval_batches, device, seed=1):
    """Peak memory (MiB) of one offline-SMD hypergradient of lookahead T with lazy batches."""
    hyper = hyperparams.Hyperparameters(0.01, MOMENTUM, beta=1.0, K=K, learn=("lr", "beta"))
    batches = StepBatches(images, labels, BATCH, seed)

    def lookahead():
        return hypergrad.hypergradient(mlp_apply, state, hyper, (batches(i) for i in range(T)),
                                       eval_batches, t0=0)

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        start = time.perf_counter()
        lookahead()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2 ** 20, time.perf_counter() - start
    start = time.perf_counter()
    _, peak = measure.peak_rss_mib(lookahead)
    return peak, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (about a minute)")
    parser.add_argument("--samples", type=int, default=64, help="schedules batched in (a) (default 64)")
    parser.add_argument("--synthetic", action="store_true", help="synthetic data even if MNIST is there")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    S = args.samples
    steps, repeats = (10, 1) if args.quick else (30, 2)
    images, labels, source = mnist_or_synthetic(device, synthetic=args.synthetic)
    params = mlp_init(torch.Generator().manual_seed(0), device=device)
    batches = StepBatches(images, labels, BATCH, seed=2)
    print(f"device: {device}; torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"MLP {'-'.join(map(str, MNIST_SIZES))}, batch {BATCH}; data: {source}")

    # (a) and (b): the sweep, batched against one schedule at a time.
    alpha0, beta = sweep_schedules(S)
    batches(0)  # the first epoch's permutation, outside the timings
    time_batched(params, alpha0[:2], beta[:2], 2, batches, device)  # warm-up (vmap, allocator)
    batched = time_batched(params, alpha0, beta, steps, batches, device, repeats)
    separate, taken = time_separate(params, alpha0, beta, steps, batches, device)
    rate_batched = S * steps / batched
    rate_separate = taken / separate
    flops = flops_per_sample_step()
    print(f"\n== (a) {S} inverse-time schedules x {steps} steps ==")
    print(f"train_batched: {batched:.3f} s, {rate_batched:10.1f} sample-steps/s")
    print(f"train, one at a time: {separate:.3f} s for {taken} steps, {rate_separate:10.1f} sample-steps/s")
    print(f"RATIO sweep throughput, batched / one at a time: {rate_batched / rate_separate:.2f}")
    print(f"\n== (b) effective arithmetic rate ({flops / 1e6:.2f} MFLOP per sample-step) ==")
    print(f"batched sweep: {rate_batched * flops / 1e9:.1f} GFLOP/s; "
          f"one at a time: {rate_separate * flops / 1e9:.1f} GFLOP/s")

    # (c) memory of the offline SMD hypergradient at T = 5000 against T = 100, lazy batches.
    state = init_state(params)
    eval_batches = [(images[s:s + 1000], labels[s:s + 1000]) for s in range(0, 5000, 1000)]
    hypergradient_peak(state, images, labels, 10, eval_batches, device)  # warm-up
    peaks = {}
    print("\n== (c) offline SMD hypergradient (lr, beta), lazy StepBatches ==")
    for T in (100, 5000):
        peaks[T], seconds = hypergradient_peak(state, images, labels, T, eval_batches, device)
        print(f"T = {T:5d}: peak {peaks[T]:7.2f} MiB above the start ({seconds:.1f} s, "
              f"{1e3 * seconds / T:.2f} ms per lookahead step)")
    print(f"RATIO hypergradient peak memory T=5000 / T=100: {peaks[5000] / max(peaks[100], 1e-9):.2f} "
          f"(target <= 1.2); difference {peaks[5000] - peaks[100]:.2f} MiB, of which the per-step "
          f"loss record {8 * 4900 / 2 ** 20:.2f} MiB")

    # (d) hypergradient step / plain step.
    ratio_batches = [batches(t) for t in range(10)]
    costs = measure.step_costs(mlp_apply, state, ratio_batches, steps=20 if args.quick else 40,
                                 repeats=3 if args.quick else 5)
    plain = costs["plain"]
    print("\n== (d) time per step ==")
    for name, value in costs.items():
        print(f"{name:24s} {1e3 * value:8.3f} ms  {value / plain:5.2f}x plain")
    print(f"RATIO hypergradient step (1 hyperparameter) / plain step: {costs['lr'] / plain:.2f} (target <= 2)")
    print(f"RATIO hypergradient step (2 hyperparameters) / plain step: "
          f"{costs['lr+momentum'] / plain:.2f} (target <= 2)")
    return {"rate_batched": rate_batched, "rate_separate": rate_separate, "peaks": peaks, "costs": costs}


if __name__ == "__main__":
    main()

"""The benchmarks' own checks: the GPU check script runs end to end on the CPU in tiny mode."""

import importlib.util
import json
import subprocess
import sys
import time

import pytest

from shortbias_lib.runs import REPO_ROOT

BENCH = REPO_ROOT / "bench"


def load_bench(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flops_per_sample_step_of_the_mnist_mlp():
    """2 B (2 sum_l in*out + sum_{l>=2} in*out) for 784-100-100-10 and B = 100 (bench_sweep's docstring)."""
    bench = load_bench("bench_sweep")
    assert bench.flops_per_sample_step() == 2 * 100 * (2 * 89_400 + 11_000) == 37_960_000


def test_gpu_check_runs_every_slice_in_tiny_cpu_mode(tmp_path):
    """``gpu_check.py --device cpu --tiny`` on synthetic data: every slice runs, reports a positive
    throughput and a projection, and the JSON record names the data and the machine."""
    gpu_check = load_bench("gpu_check")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "--device", "cpu", "--tiny",
                           "--synthetic", "--out", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert set(record["slices"]) == set(gpu_check.SLICES)
    for name, entry in record["slices"].items():
        assert entry["ok"], f"{name}: {entry.get('error')}\n{entry.get('traceback')}"
        if name in ("online_compiled", "offline_smd_compiled"):  # compiling takes minutes on a CPU: skipped
            assert "skipped in --tiny mode" in entry["skipped"]
            continue
        assert entry["throughput"] > 0 and entry["unit"], name
    for name in ("offline_sweep", "offline_smd", "online_mnist", "online_cifar10", "online_batched",
                 "offline_smd_batched"):
        assert all(v > 0 for v in record["slices"][name]["projection"].values() if isinstance(v, float)), name
    batched = record["slices"]["online_batched"]
    assert batched["ratios"]["separate_over_batched_eager"] > 0
    assert record["slices"]["offline_smd_batched"]["ratios"]["separate_over_batched"] > 0
    # every paper experiment's floor is there (not compared with the projections: in --tiny mode
    # on a shared CPU the small matrix product's measured rate is no peak, so no bound either)
    against = record["against_floors"]
    assert all(floor > 0 for _, floor in against.values())
    assert all(f"online MNIST, 5 stochastic runs, {name}" in against for name in ("batched eager", "separate (old)"))
    assert "next to their floors" in done.stdout
    assert all(seconds > 0 for seconds in record["projected_paper_s"].values())
    assert record["data"]["mnist"].startswith("synthetic") and record["machine"]["device"] == "cpu"
    ratios = record["slices"]["hyper_ratio"]["measurements"]["ratio_to_plain"]
    assert {"plain", "lr", "lr+momentum"} <= set(ratios)
    assert "projected full time" in done.stdout
    assert seconds < 60, f"tiny mode took {seconds:.0f} s"


def test_gpu_check_records_a_failing_slice_and_goes_on(tmp_path, monkeypatch):
    """A slice that raises is recorded with its error; the others still run."""
    gpu_check = load_bench("gpu_check")

    def broken(ctx):
        raise RuntimeError("planted failure")

    monkeypatch.setitem(gpu_check.SLICE_FUNCTIONS, "offline_sweep", broken)
    assert gpu_check.main(["--device", "cpu", "--tiny", "--synthetic", "--out", str(tmp_path),
                           "--only", "offline_sweep", "hyper_ratio"]) == 0
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert not record["slices"]["offline_sweep"]["ok"]
    assert "planted failure" in record["slices"]["offline_sweep"]["error"]
    assert record["slices"]["hyper_ratio"]["ok"]


def test_plain_step_flops_counts_the_mlps_matrix_products_and_floors_add_up():
    """The counted FLOPs of a plain MLP step equal bench_sweep's formula (batch 100), and a meta
    step's floor is (T (1 + P) + n_eval) plain steps."""
    import torch

    from shortbias_lib.engine import models

    gpu_check = load_bench("gpu_check")
    params = models.mlp_init(torch.Generator().manual_seed(0))
    images, labels = torch.rand(100, 1, 28, 28), torch.randint(0, 10, (100,))
    counted = gpu_check.plain_step_flops(models.mlp_apply, params, images, labels)
    assert counted == load_bench("bench_sweep").flops_per_sample_step() == 37_960_000
    assert gpu_check.meta_step_floor(10.0, horizon=5, n_eval=5) == (5 * 3 + 5) * 10.0
    floors = gpu_check.paper_floors({"plain_flops_mlp": 1.0, "plain_flops_cnn": 0.0, "fp32_flops_per_s": 1.0})
    # five runs x (50,000 steps + 2,500 adaptations x 100 meta steps x (5 x 3 + 5) plain steps)
    assert floors["online_mnist_5_stochastic"] == 5 * (50_000 + 2_500 * 100 * 20)
    # 2 starts x 5,000 meta steps x (T x 3 + 600 objective batches) over T = 100, 1000, 5000
    assert floors["offline_smd"] == 2 * 5_000 * sum(T * 3 + 600 for T in (100, 1000, 5000))
    assert floors["online_cifar10"] == 0.0


@pytest.mark.parametrize("gzipped", [False, True])
def test_gpu_check_finds_mnist_plain_or_gzipped(tmp_path, gzipped):
    """The carried folder may hold MNIST's IDX files gzipped (``gpu_check.sh --prepare``)."""
    import gzip

    gpu_check = load_bench("gpu_check")
    raw = tmp_path / "carried" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in gpu_check.MNIST_FILES:
        data = name.encode()
        if gzipped:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (raw / name).write_bytes(data)
    root, how = gpu_check.find_mnist_root(tmp_path / "carried")
    assert how == "--data-root"
    assert all((root / "MNIST" / "raw" / name).read_bytes() == name.encode() for name in gpu_check.MNIST_FILES)
    assert gpu_check.find_mnist_root(tmp_path / "carried", synthetic=True)[0] is None


def test_bench_batched_smd_runs_eagerly_on_the_cpu(capsys):
    """``bench_batched_smd.py`` at its smallest (2 runs, 1 meta step, no compiling) prints its ratios."""
    load_bench("bench_batched_smd").main(["--device", "cpu", "--runs", "2", "--meta-steps", "1",
                                          "--repeats", "1", "--no-compile"])
    out = capsys.readouterr().out
    assert "batched S=2 (eager) / 2 separate eager runs" in out and "ms per meta step" in out

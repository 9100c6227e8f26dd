"""bench/gpu_archive_legs.py on the CPU: legs resume one another, their files travel in one tar,
and bringing them back keeps whichever copy of a run is further along."""

import filecmp
import json
import tarfile
import time

from shortbias_lib.experiments.online import experiment as online
from shortbias_lib.__main__ import EXIT_OUT_OF_TIME
from test_bench import load_bench


def test_gpu_archive_legs_dry_run_resumes_packs_and_unpacks(tmp_path, data_root, monkeypatch):
    legs = load_bench("gpu_archive_legs")
    mnist = dict(online.SIZES["smoke"]["mnist"], checkpoint_every=10)  # 40 steps: checkpoints at 10, 20
    monkeypatch.setitem(online.SIZES["smoke"], "mnist", mnist)
    data = tmp_path / "gpu_data"
    legs.prepare(data_root, data, per_class=10)  # real MNIST (checksummed), 10 CIFAR-10 images per class
    repo, here, out = tmp_path / "there", tmp_path / "here", tmp_path / "out"
    options = dict(mnist_profile="smoke", cifar_profile="smoke", root=repo)

    since = time.time() - 1
    assert legs.leg(out, 1e-9, "cpu", data, **options) == EXIT_OUT_OF_TIME  # stops at the first checkpoint
    first = legs.pack(out / "first", since, root=repo)
    assert first == ["archive/checkpoints/online_smoke_seed0_mnist__baseline__0.1.partial.npz"]
    since = time.time()
    codes = []
    while not codes or codes[-1] == EXIT_OUT_OF_TIME:
        assert len(codes) < 30, "legs make no progress"
        codes.append(legs.leg(out, 0.1, "cpu", data, **options))
    record = json.loads((out / "legs.json").read_text())
    assert record["mnist_exit_status"] == 0 and record["cifar10_done"]
    finished = legs.pack(out / "last", since, root=repo)
    with tarfile.open(out / "last" / legs.PACKED) as tar:
        assert sorted(tar.getnames()) == sorted(finished)
    keys = {name.split("seed0_")[1] for name in finished}
    assert {"mnist__baseline__0.1.npz", "mnist__stochastic__0.01.npz", "cifar10__deterministic__0.001.npz"} <= keys
    assert any(name.startswith(legs.CIFAR_RESULTS) for name in finished)
    assert not any(name.endswith(".partial.npz") for name in finished)

    partial = first[0]
    assert legs.unpack(out / "first" / legs.PACKED, here) == {partial: "taken (step 10)"}
    assert legs.unpack(out / "first" / legs.PACKED, here) == {partial: "kept the partial here (step 10 >= 10)"}
    back = legs.unpack(out / "last" / legs.PACKED, here)
    assert set(back.values()) == {"taken"}
    assert not (here / partial).exists()  # the finished run replaces its partial
    for name in finished:
        assert filecmp.cmp(repo / name, here / name, shallow=False), name
    assert legs.unpack(out / "first" / legs.PACKED, here) == {partial: "kept the finished run here"}
    assert set(legs.unpack(out / "last" / legs.PACKED, here).values()) == {"kept the finished run here"}

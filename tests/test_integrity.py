"""Data and results integrity (issue 12): nothing wrong reused, nothing overwritten, one-line errors.

Result files named by profile and seed, one run per file at a time (a lock), damaged
result files refused with a one-line message, the command line's errors, seeds checked
before any work, leftover temporary files removed.
"""

import errno
import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch

from shortbias_lib.experiments.beyond import experiment as beyond, mnist as beyond_mnist
from shortbias_lib import data, locks, notebook, runs
from shortbias_lib.nqm import horizon_bias, fixed as nqm_fixed, pes
from shortbias_lib.experiments.offline import experiment as offline
from shortbias_lib.experiments.online import experiment as online
from shortbias_lib.experiments.precision import experiment as precision
from shortbias_lib.engine import schedules
from shortbias_lib.experiments import figure3 as nq
from shortbias_lib.__main__ import EXPERIMENTS, Experiment, main
from shortbias_lib.errors import DataError, DivergenceError, ResultFileError, ResultLockedError, ResultsFolderError
from shortbias_lib.experiments.online.loop import OnlineSettings


def _one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def small_figure3(monkeypatch):
    monkeypatch.setitem(nq.FIGURE3_SETUP, "n", 20)
    monkeypatch.setitem(nq.FIGURE3_SETUP, "horizon", 10)
    monkeypatch.setitem(nq.FIGURE3_FIT, "fixed_steps", 2)
    monkeypatch.setattr(nq, "SMOKE_STEPS", 2)


@pytest.fixture
def synthetic_mnist(monkeypatch):
    """``data.load`` returns 400 random MNIST-shaped images (no files read)."""
    def load(name, train=True, root=None, limit=None, download=None):
        g = torch.Generator().manual_seed(0 if train else 1)
        n = limit or 400
        return data.Dataset(torch.rand(n, 1, 28, 28, generator=g),
                            torch.randint(0, 10, (n,), generator=g), name, "synthetic")

    monkeypatch.setattr(data, "load", load)


# ---------------------------------------------------------------- 2. nothing overwritten

def test_figure3_files_are_named_by_profile_and_seed(tmp_path, small_figure3):
    nq.run_figure3("smoke", seed=0, results=tmp_path)
    first = (tmp_path / "figure3_smoke_seed0.npz").read_bytes()
    nq.run_figure3("smoke", seed=1, results=tmp_path)
    assert (tmp_path / "figure3_smoke_seed0.npz").read_bytes() == first
    assert runs.load_result(tmp_path / "figure3_smoke_seed1.npz")[1]["seed"] == 1


def test_online_files_of_another_seed_are_left_alone(tmp_path, synthetic_mnist):
    kw = dict(device="cpu", results=tmp_path, datasets=("mnist",), show_progress=False)
    first = online.run_online("smoke", seed=0, **kw)
    files = {p: p.read_bytes() for p in tmp_path.rglob("*.npz")}
    assert tmp_path / "online_smoke_seed0.npz" in files
    assert all("seed0" in p.name for p in files)
    online.run_online("smoke", seed=1, **kw)
    assert all(p.read_bytes() == content for p, content in files.items())  # untouched
    arrays_1, meta = runs.load_result(tmp_path / "online_smoke_seed1.npz")
    assert meta["seed"] == 1 and set(online.runs_from_arrays(arrays_1)) == set(online.runs_from_arrays(first.arrays))
    assert not list(tmp_path.rglob("*.lock"))


def test_a_second_run_of_the_same_result_file_is_refused_with_one_line(tmp_path):
    path = tmp_path / "r.npz"
    with locks.run_lock(path) as lock:
        assert lock == tmp_path / "r.npz.lock" and lock.exists()
        with pytest.raises(ResultLockedError) as error:
            with locks.run_lock(path):
                pass
        message = _one_line(str(error.value))
        assert str(path) in message and f"pid {os.getpid()}" in message and "r.npz.lock" in message
    assert not lock.exists()
    with locks.run_lock(path):  # free again
        pass


def test_a_lock_left_by_a_dead_run_is_taken_over(tmp_path):
    path = tmp_path / "r.npz"
    (tmp_path / "r.npz.lock").write_text(f"{_dead_pid()} somewhere\n")
    with locks.run_lock(path) as lock:
        assert lock.read_text().split()[0] == str(os.getpid())


def test_a_lock_held_by_another_process_is_respected(tmp_path):
    path = tmp_path / "r.npz"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from shortbias_lib import locks\n"
         f"with locks.run_lock({str(path)!r}):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ResultLockedError, match=f"pid {holder.pid}"):
            with locks.run_lock(path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with locks.run_lock(path):  # the system released the killed holder's lock
        pass


def test_a_lock_where_none_can_be_made(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ResultsFolderError, match="cannot create the lock file .*a-file/r.npz.lock"):
        with locks.run_lock(blocker / "r.npz"):
            pass
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)  # a file system without locks: run as before
    with locks.run_lock(tmp_path / "r.npz"):
        pass
    assert not (tmp_path / "r.npz.lock").exists()


def test_experiments_refuse_to_run_while_their_file_is_locked(tmp_path, small_figure3,
                                                              synthetic_mnist):
    cases = [(nq.run_figure3, "figure3"), (beyond.run_beyond_nqm, "beyond"),
             (beyond_mnist.run_beyond_mnist, "beyond_mnist"), (online.run_online, "online")]
    for run, name in cases:
        with locks.run_lock(runs.result_path(name, "smoke", 3, tmp_path)):
            with pytest.raises(ResultLockedError, match=f"{name}_smoke_seed3.npz is being computed"):
                run("smoke", device="cpu", seed=3, results=tmp_path)
    assert not list(tmp_path.glob("*.npz"))


def test_cli_refuses_a_concurrent_run_of_the_same_configuration(tmp_path, capsys):
    with locks.run_lock(tmp_path / "figure3_smoke_seed0.npz"):
        code = main(["figure3", "--profile", "smoke", "--results", str(tmp_path)])
    assert code == 2
    assert "is being computed by another run" in _one_line(capsys.readouterr().err)


# ---------------------------------------------------------------- 4. damaged result files

def _damaged_files(folder):
    good = runs.save_result(folder / "good.npz", {"x": np.arange(50.0), "y": np.zeros((2, 3))},
                            {"config": {"a": 1}})
    content = good.read_bytes()
    files = {"truncated": content[:len(content) // 2], "random": os.urandom(400), "empty": b"",
             "text": b"hello, world\n"}
    for name, blob in files.items():
        (folder / f"{name}.npz").write_bytes(blob)
    np.savez(folder / "object.npz", x=np.array([1, "a"], dtype=object), meta=np.array("{}"))
    np.savez(folder / "no_meta.npz", x=np.zeros(3))
    np.savez(folder / "bad_json.npz", x=np.zeros(3), meta=np.array("{not json"))
    # hand edits that keep the manifest: another shape, a missing array
    with np.load(good) as archive:
        kept = {k: archive[k] for k in archive.files}
    np.savez(folder / "reshaped.npz", **dict(kept, x=np.arange(49.0)))
    np.savez(folder / "missing.npz", **{k: v for k, v in kept.items() if k != "y"})
    np.savez(folder / "edited.npz", **dict(kept, x=np.arange(50.0) + (np.arange(50) == 7)))  # one value
    return sorted(p for p in folder.glob("*.npz") if p.name != "good.npz")


def test_damaged_result_files_give_one_line_naming_the_file(tmp_path):
    damaged = _damaged_files(tmp_path)
    assert len(damaged) == 10
    for path in damaged:
        for load in (lambda: runs.load_result(path), lambda: runs.load_matching(path, {"a": 1})):
            with pytest.raises(ResultFileError) as error:
                load()
            message = _one_line(str(error.value))
            assert str(path) in message and "--no-resume" in message, message
            assert "pickle" not in message, message
    assert runs.load_matching(tmp_path / "good.npz", {"a": 1}) is not None


def test_expected_arrays_and_shapes_are_checked_before_reuse(tmp_path):
    path = tmp_path / "r.npz"
    np.savez(path, x=np.zeros(4), meta=np.array('{"config": {"a": 1}}'))  # no manifest: an old file
    assert runs.load_matching(path, {"a": 1}, expected={"x": (4,)}) is not None
    assert runs.load_matching(path, {"a": 1}, expected={"x": (None,)}) is not None
    assert runs.load_matching(path, {"a": 2}, expected={"x": (5,)}) is None  # another run's file
    with pytest.raises(ResultFileError, match=r"'x' of shape \(4,\), expected \(5,\).*--no-resume"):
        runs.load_matching(path, {"a": 1}, expected={"x": (5,)})
    with pytest.raises(ResultFileError, match="lacks the array 'y'"):
        runs.load_result(path, expected={"x": None, "y": None})


def test_save_result_refuses_object_arrays_and_the_reserved_names(tmp_path):
    with pytest.raises(ValueError, match="dtype object"):
        runs.save_result(tmp_path / "r.npz", {"x": np.array([1, "a"], dtype=object)}, {})
    with pytest.raises(ValueError, match="reserved name '__manifest__'"):
        runs.save_result(tmp_path / "r.npz", {runs.MANIFEST: np.zeros(1)}, {})
    assert not list(tmp_path.iterdir())


def test_a_hand_edited_figure3_file_is_not_reused(tmp_path, small_figure3, capsys):
    nq.run_figure3("smoke", results=tmp_path)
    path = tmp_path / "figure3_smoke_seed0.npz"
    with np.load(path) as archive:
        kept = {k: archive[k] for k in archive.files if k != runs.MANIFEST}
    np.savez(path, **dict(kept, final_losses=np.zeros(2)))  # no manifest left: only `expected` sees it
    with pytest.raises(ResultFileError, match="'final_losses' of shape"):
        nq.run_figure3("smoke", results=tmp_path)
    assert main(["figure3", "--profile", "smoke", "--results", str(tmp_path)]) == 2
    assert str(path) in _one_line(capsys.readouterr().err)
    assert main(["figure3", "--profile", "smoke", "--results", str(tmp_path), "--no-resume"]) == 0
    assert runs.load_result(path)[0]["final_losses"].shape == (3,)


def test_one_edited_value_of_a_figure3_file_is_refused_not_reused(tmp_path, small_figure3, capsys):
    nq.run_figure3("smoke", results=tmp_path)
    path = tmp_path / "figure3_smoke_seed0.npz"
    with np.load(path) as archive:
        kept = {k: archive[k] for k in archive.files}  # the manifest too
    edited = kept["final_losses"].copy()
    edited[0] *= 1.5
    np.savez(path, **dict(kept, final_losses=edited))
    with pytest.raises(ResultFileError) as error:
        nq.run_figure3("smoke", results=tmp_path)
    message = _one_line(str(error.value))
    assert str(path) in message and "'final_losses'" in message and "--no-resume" in message
    assert main(["figure3", "--profile", "smoke", "--results", str(tmp_path), "--no-resume"]) == 0
    assert runs.load_result(path)[0]["final_losses"][0] == kept["final_losses"][0]


def test_files_written_before_digests_still_load(tmp_path):
    path = tmp_path / "old.npz"
    np.savez(path, x=np.arange(3.0), meta=np.array('{"config": {}}'),
             **{runs.MANIFEST: np.array('{"x": [[3], "<f8"]}')})
    assert runs.load_result(path)[0]["x"].tolist() == [0.0, 1.0, 2.0]
    for archived in sorted((runs.REPO_ROOT / "archive").glob("*.npz")):  # committed without digests
        assert runs.load_result(archived)[1]["config"]


def _file_lacking(path, expected, config, missing):
    """A finished file of ``config`` (profile smoke, seed 0) holding ``expected``'s arrays but
    ``missing``, its manifest consistent with what it holds (no digest can tell)."""
    arrays = {name: np.zeros([1 if n is None else n for n in (shape or ())])
              for name, shape in expected.items() if name != missing}
    meta = dict(runs.provenance("smoke", "cpu", 0, **config), stage="finished")
    return runs.save_result(path, arrays, meta)


def test_every_experiment_refuses_a_file_lacking_an_array_with_one_line(tmp_path, data_root):
    """A finished file lacking an array is named, whether the run reuses it or the chapter loads it."""
    kw = dict(device="cpu", data_root=data_root, results=tmp_path)
    off = offline.check_config(offline.config_for("smoke"))
    prec = precision.check_config(precision.config_for("smoke"))
    nqm = dict(beyond._sizes("smoke"), kappa=beyond.DEFAULT_KAPPA, c0=beyond.DEFAULT_C0, version=3)
    off_path, prec_path = offline.result_path("smoke", 0, tmp_path), precision.result_path("smoke", 0, tmp_path)
    nqm_path = runs.result_path("beyond", "smoke", 0, tmp_path)
    cases = [(off_path, offline.finished_expected(off), off, "curve_train_loss",
              [lambda: offline.run_offline("smoke", **kw), lambda: offline.load_offline(off_path)]),
             (prec_path, precision._expected(prec), prec, "meta_loss",
              [lambda: precision.run_precision("smoke", **kw), lambda: precision.load_precision(prec_path)]),
             (nqm_path, beyond._nqm_expected(nqm), nqm, "map_ratio", [lambda: beyond.run_beyond_nqm("smoke", **kw)])]
    for path, expected, config, missing, attempts in cases:
        _file_lacking(path, expected, config, missing)
        for attempt in attempts:
            with pytest.raises(ResultFileError) as error:
                attempt()
            message = _one_line(str(error.value))
            assert str(path) in message and f"lacks the array {missing!r}" in message, message


def test_a_corrupt_online_checkpoint_is_reported_and_recomputed_with_no_resume(tmp_path,
                                                                               synthetic_mnist):
    kw = dict(device="cpu", results=tmp_path, datasets=("mnist",), show_progress=False)
    online.run_online("smoke", **kw)
    victim = next((tmp_path / "checkpoints").glob("online_smoke_seed0_mnist__stochastic*.npz"))
    victim.write_bytes(victim.read_bytes()[:100])
    (tmp_path / "online_smoke_seed0.npz").unlink()  # the finished file is reused; gather the runs again
    with pytest.raises(ResultFileError, match=f"{victim.name} is damaged.*--no-resume"):
        online.run_online("smoke", **kw)
    online.run_online("smoke", resume=False, **kw)
    assert runs.load_result(victim)[0]["eff_lr"].shape == (online.SIZES["smoke"]["mnist"]["steps"],)


# ---------------------------------------------------------------- 5. the command line

def fake_experiment(profile, *, device, seed, data_root, results, resume):
    """Stands in for an experiment in the CLI tests: does what ``FAKE`` says."""
    FAKE(runs.results_dir(results) / f"fake_{profile}_seed{seed}.npz")


FAKE = None


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(EXPERIMENTS, "fake", Experiment(fake_experiment, "a test"))

    def use(action):
        monkeypatch.setattr(sys.modules[__name__], "FAKE", action)

    return use


def test_cli_ctrl_c_says_the_run_resumes_with_the_same_command(tmp_path, capsys, fake):
    def interrupted(path):
        raise KeyboardInterrupt

    fake(interrupted)
    assert main(["fake", "--results", str(tmp_path)]) == 130
    assert "run the same command again" in _one_line(capsys.readouterr().err)


SLOW_RUN = """
import os, sys, time
import numpy as np
from shortbias_lib import runs
from shortbias_lib.__main__ import EXPERIMENTS, Experiment, main

def slow(profile, *, device, seed, data_root, results, resume):
    path = runs.result_path("slow", profile, seed, results)
    def compute():
        if os.environ.get("SLOW") == "1":
            print("computing", flush=True)
            time.sleep(60)
        runs.save_result(path, {"x": np.zeros(2)}, {"config": {}})
    runs.run_or_resume(path, {}, compute, resume=resume)

EXPERIMENTS["slow"] = Experiment(slow, "a test")
sys.exit(main(sys.argv[1:]))
"""


def test_cli_sigterm_stops_like_ctrl_c_and_the_run_resumes(tmp_path):
    import signal

    command = [sys.executable, "-c", SLOW_RUN, "slow", "--results", str(tmp_path)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, SLOW="1"))
    try:
        assert child.stdout.readline().strip() == "computing"
        assert (tmp_path / "slow_quick_seed0.npz.lock").exists()
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 143
    line = _one_line(err)
    assert "terminated (SIGTERM)" in line and "run the same command again" in line
    assert not (tmp_path / "slow_quick_seed0.npz.lock").exists()  # released: the same command runs
    assert subprocess.run(command, env=dict(os.environ, SLOW="0")).returncode == 0
    assert runs.load_result(tmp_path / "slow_quick_seed0.npz")[0]["x"].shape == (2,)


def test_cli_full_disk_is_one_line_naming_the_file(tmp_path, capsys, fake, monkeypatch):
    def full(handle, **arrays):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runs.np, "savez", full)
    fake(lambda path: runs.save_result(path, {"x": np.zeros(3)}, {}))
    assert main(["fake", "--results", str(tmp_path)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "No space left on device" in line and "fake_quick_seed0.npz" in line
    assert not list(tmp_path.iterdir())  # no temporary file left behind


def test_cli_data_and_os_errors_are_one_line(tmp_path, capsys, fake):
    def bad_data(path):
        raise DataError("MNIST file x is damaged")

    def unreadable(path):
        open(tmp_path / "no" / "such" / "file")

    fake(bad_data)
    assert main(["fake", "--results", str(tmp_path)]) == 2
    assert "MNIST file x is damaged" in _one_line(capsys.readouterr().err)
    fake(unreadable)
    assert main(["fake", "--results", str(tmp_path)]) == 1
    assert "No such file or directory" in _one_line(capsys.readouterr().err)


def test_cli_any_other_error_is_one_line_naming_it_and_debug_shows_the_traceback(tmp_path, capsys, fake):
    def bug(path):
        raise RuntimeError("index out of range\nsecond line")

    fake(bug)
    assert main(["fake", "--results", str(tmp_path)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "RuntimeError: index out of range second line" in line
    assert f"python -m shortbias_lib fake --results {tmp_path} --debug" in line
    with pytest.raises(RuntimeError, match="index out of range"):
        main(["fake", "--results", str(tmp_path), "--debug"])


def test_cli_results_naming_a_file_fails_before_any_work(tmp_path, capsys, fake):
    fake(lambda path: pytest.fail("the experiment ran"))
    target = tmp_path / "a-file"
    target.write_text("")
    assert main(["fake", "--results", str(target)]) == 2
    assert "is a file, not a folder" in _one_line(capsys.readouterr().err)
    assert main(["fake", "--results", str(target / "below")]) == 2
    assert "cannot create results folder" in _one_line(capsys.readouterr().err)


def test_a_read_only_results_folder_fails_before_any_work(capsys, fake, monkeypatch):
    fake(lambda path: pytest.fail("the experiment ran"))
    real = runs.tempfile.mkstemp

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(runs.tempfile, "mkstemp", read_only)
    assert main(["fake", "--results", str(runs.REPO_ROOT)]) == 2
    assert "is not writable (Read-only file system)" in _one_line(capsys.readouterr().err)
    monkeypatch.setattr(runs.tempfile, "mkstemp", real)
    if _cannot_write("/sys"):  # a real read-only folder, where there is one
        assert main(["fake", "--results", "/sys"]) == 2
        assert "/sys is not writable" in _one_line(capsys.readouterr().err)


def _cannot_write(folder):
    try:
        locks.check_writable(folder)
    except Exception:  # noqa: BLE001
        return True
    return False


def test_cli_argument_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["figure3", "--seed", "abc"])
    assert stop.value.code == 2
    assert "invalid int value: 'abc'" in _one_line(capsys.readouterr().err)


# ---------------------------------------------------------------- 6. seeds

@pytest.mark.parametrize("seed", [-3, True, 2 ** 32, 1.5, "1", None])
def test_check_seed_refuses_what_is_not_a_seed(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32 - 1\]"):
        runs.check_seed(seed)


def test_check_seed_accepts_integers_in_range():
    assert [runs.check_seed(s) for s in (0, 2 ** 32 - 1, np.int64(5))] == [0, 2 ** 32 - 1, 5]
    assert type(runs.check_seed(np.int64(5))) is int


@pytest.mark.parametrize("seed", [-3, 2 ** 40, True])
def test_every_experiment_checks_its_seed_before_any_work(tmp_path, seed):
    results = tmp_path / "results"
    for run in (nq.run_figure3, online.run_online, beyond.run_beyond, beyond.run_beyond_nqm,
                beyond_mnist.run_beyond_mnist, data.run_check):
        with pytest.raises(ValueError, match="seed must be an integer"):
            run("smoke", device="cpu", seed=seed, data_root=tmp_path / "none", results=results)
    with pytest.raises(ValueError, match="seed must be an integer"):
        online.run_dataset("mnist", "smoke", seed=seed, data_root=tmp_path / "none", results=results)
    with pytest.raises(ValueError, match="seed must be an integer"):
        notebook.setup("smoke", "cpu", seed, None, results, show=False)
    assert not results.exists()


def test_cli_refuses_a_negative_seed_before_any_work(tmp_path, capsys):
    assert main(["online", "--profile", "smoke", "--seed", "-3", "--results", str(tmp_path / "r")]) == 2
    assert "seed must be an integer in [0, 2**32 - 1]; got -3" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- 7. leftovers

def test_save_result_removes_stale_temporary_files_of_this_tool(tmp_path):
    host = locks.host_tag()
    dead = tmp_path / f".a.npz.{host}-{_dead_pid()}.k3j_x9qa.tmp"       # its writer is gone
    old = tmp_path / ".b.npz.ab12cd_9.tmp"                              # an old version's, 2 h old
    live = tmp_path / f".c.npz.{host}-{os.getpid()}.zz00zz00.tmp"      # being written right now
    recent = tmp_path / ".d.npz.ab12cd_9.tmp"                           # an old version's, fresh
    other_host = tmp_path / f".e.npz.00000000-{_dead_pid()}.aaaaaaaa.tmp"  # may be writing still
    foreign = [tmp_path / ".not-ours.tmp", tmp_path / "notes.tmp", tmp_path / ".x.npz.ABCDEFGH.tmp",
               tmp_path / ".bashrc.backup12.tmp"]
    for path in [dead, old, live, recent, other_host, *foreign]:
        path.write_bytes(b"x" * 10)
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    for path in foreign:
        os.utime(path, (two_hours_ago, two_hours_ago))
    runs.save_result(tmp_path / "r.npz", {"x": np.zeros(2)}, {})
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"r.npz", live.name, recent.name, other_host.name, *(p.name for p in foreign)}


def test_a_killed_writer_leaves_a_temporary_file_that_the_next_save_removes(tmp_path):
    code = (f"import os, numpy as np\nfrom shortbias_lib import runs\n"
            f"def stop(handle, **arrays):\n    handle.write(b'half'); handle.flush(); os._exit(9)\n"
            f"np.savez = stop\nruns.save_result({str(tmp_path / 'r.npz')!r}, {{'x': np.zeros(3)}}, {{}})")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert len([p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]) == 1
    runs.save_result(tmp_path / "s.npz", {"x": np.zeros(2)}, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]


def test_zip_damage_is_detected_by_its_checksum(tmp_path):
    """A flipped byte inside a stored array (zip CRC) is caught, not loaded as other numbers."""
    path = runs.save_result(tmp_path / "r.npz", {"x": np.arange(1000.0)}, {})
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("x.npy")
    blob = bytearray(path.read_bytes())
    blob[info.header_offset + 30 + len(info.filename) + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ResultFileError, match="r.npz is damaged"):
        runs.load_result(path)


# ---------------------------------------------------------------- 3. bad data files

def _mnist_root(tmp_path, data_root, bad=None):
    """A data root whose MNIST files link to the genuine ones, except ``bad`` (name -> bytes)."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    genuine = data_root / "MNIST" / "raw"
    for name in data.MNIST_SHA256:
        if name in (bad or {}):
            (raw / name).write_bytes(bad[name])
        else:
            (raw / name).symlink_to(genuine / name)
    return tmp_path


def test_damaged_mnist_files_are_named(tmp_path, data_root):
    genuine = data_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    header = genuine.read_bytes()[:16]
    cases = {"truncated": header + b"\0" * 100,
             "garbage pixels, intact header": header + b"\x07" * (10000 * 28 * 28),
             "random": os.urandom(5000)}
    for k, (what, content) in enumerate(cases.items()):
        root = _mnist_root(tmp_path / str(k), data_root, {genuine.name: content})
        with pytest.raises(DataError) as error:
            data.load("mnist", train=False, root=root)
        message = _one_line(str(error.value))
        assert str(root / "MNIST" / "raw" / genuine.name) in message, what
        assert "damaged or not the canonical file" in message and "download=True" in message
    root = _mnist_root(tmp_path / "missing", data_root)
    (root / "MNIST" / "raw" / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="train-labels-idx1-ubyte is missing"):
        data.load("mnist", train=False, root=root)


def test_mnist_from_the_genuine_files_has_a_fingerprint(tmp_path, data_root):
    first = data.load("mnist", train=False, root=data_root, limit=100)
    again = data.load("mnist", train=False, root=_mnist_root(tmp_path, data_root), limit=100)
    assert first.fingerprint and first.fingerprint == again.fingerprint
    assert data.load("mnist", train=False, root=data_root, limit=99).fingerprint != first.fingerprint


def test_a_failed_download_leaves_no_empty_folders(tmp_path, monkeypatch):
    made = [tmp_path / "MNIST" / "raw", tmp_path / "cifar-10-batches-py"]

    def failed_download(factory):  # torchvision makes its folders, then the download fails
        made.pop(0).mkdir(parents=True)
        return None

    monkeypatch.setattr(data, "_try_download", failed_download)
    with pytest.raises(DataError, match="MNIST not found"):
        data.load("mnist", root=tmp_path)
    with pytest.raises(DataError, match="CIFAR-10 not found"):
        data.load("cifar10", root=tmp_path)
    assert not list(tmp_path.iterdir())


def test_online_results_made_from_other_data_are_not_reused(tmp_path, monkeypatch):
    def loader(shift):
        def load(name, train=True, root=None, limit=None, download=None):
            g = torch.Generator().manual_seed(shift + (0 if train else 1))
            n = limit or 400
            pixels = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
            labels = torch.randint(0, 10, (n,), generator=g)
            return data.Dataset(pixels.float() / 255, labels, name, "synthetic",
                                data.fingerprint(pixels.numpy(), labels.numpy()))
        return load

    kw = dict(device="cpu", results=tmp_path, datasets=("mnist",), show_progress=False)
    monkeypatch.setattr(data, "load", loader(0))
    first = online.runs_from_arrays(online.run_online("smoke", **kw).arrays)
    monkeypatch.setattr(data, "load", loader(10))  # same source name, other pixels
    other = online.runs_from_arrays(online.run_online("smoke", **kw).arrays)
    assert all(not np.array_equal(first[k].losses, other[k].losses) for k in first)


# ---------------------------------------------------------------- 1. the decoded CIFAR-10 cache

def _jpeg_root(folder, shade):
    from PIL import Image

    for label, name in enumerate(data.CIFAR10_CLASSES):
        (folder / "cifar10-jpeg" / "test" / name).mkdir(parents=True)
        for i in range(2):
            pixels = np.full((32, 32, 3), (shade + 20 * label + 7 * i) % 256, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "cifar10-jpeg" / "test" / name / f"{i:04d}.jpg",
                                         quality=95)
    return folder


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "shortbias" / "decoded"


def test_the_decoded_cache_never_serves_another_copy_s_pixels(tmp_path, own_cache):
    a, b = _jpeg_root(tmp_path / "a", 0), _jpeg_root(tmp_path / "b", 100)
    first = data.load("cifar10", train=False, root=a)
    second = data.load("cifar10", train=False, root=b)  # same folder names, other pixels
    assert not torch.equal(first.images, second.images)
    assert first.fingerprint != second.fingerprint
    assert torch.equal(data.load("cifar10", train=False, root=a).images, first.images)
    assert len(list(own_cache.glob("*.npz"))) == 2


def test_an_edited_or_damaged_image_is_not_hidden_by_the_cache(tmp_path, own_cache):
    from PIL import Image

    root = _jpeg_root(tmp_path / "a", 0)
    first = data.load("cifar10", train=False, root=root)
    image = root / "cifar10-jpeg" / "test" / "cat" / "0001.jpg"
    Image.fromarray(np.full((32, 32, 3), 250, dtype=np.uint8)).save(image, quality=95)
    os.utime(image, ns=(1, 1))  # a distinct modification time, whatever the clock's resolution
    edited = data.load("cifar10", train=False, root=root)
    assert not torch.equal(edited.images, first.images)
    image.write_bytes(image.read_bytes()[:60])  # truncated JPEG
    with pytest.raises(DataError) as error:
        data.load("cifar10", train=False, root=root)
    assert str(image) in _one_line(str(error.value))


def test_an_image_edited_in_place_with_its_size_and_time_kept_is_decoded_again(tmp_path, own_cache):
    import io

    from PIL import Image

    root = _jpeg_root(tmp_path / "a", 0)
    first = data.load("cifar10", train=False, root=root)
    image = root / "cifar10-jpeg" / "test" / "cat" / "0001.jpg"
    before = image.stat()
    encoded = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 250, dtype=np.uint8)).save(encoded, format="JPEG", quality=95)
    edited = encoded.getvalue()
    assert len(edited) <= before.st_size
    image.write_bytes(edited + b"\0" * (before.st_size - len(edited)))  # bytes after the image's end are ignored
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (image.stat().st_size, image.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    again = data.load("cifar10", train=False, root=root)
    assert not torch.equal(again.images, first.images) and again.fingerprint != first.fingerprint


def test_a_cache_whose_pixels_were_edited_is_rebuilt(tmp_path, own_cache, capsys):
    root = _jpeg_root(tmp_path / "a", 0)
    first = data.load("cifar10", train=False, root=root)
    (cache,) = own_cache.glob("*.npz")
    with np.load(cache) as archive:
        kept = {k: archive[k] for k in archive.files}  # its meta and manifest too
    pixels = kept["pixels"].copy()
    pixels[0, 0, 0, 0] ^= 0xFF
    np.savez(cache, **dict(kept, pixels=pixels))
    again = data.load("cifar10", train=False, root=root)
    assert torch.equal(again.images, first.images)
    assert f"cache {cache} is damaged" in capsys.readouterr().err
    assert np.array_equal(runs.load_result(cache)[0]["pixels"], kept["pixels"])  # rebuilt


def test_a_damaged_cache_is_rebuilt_and_an_unwritable_one_is_done_without(tmp_path, own_cache,
                                                                          capsys, monkeypatch):
    root = _jpeg_root(tmp_path / "a", 0)
    first = data.load("cifar10", train=False, root=root)
    (cache,) = own_cache.glob("*.npz")
    cache.write_bytes(b"garbage")
    again = data.load("cifar10", train=False, root=root)
    assert torch.equal(again.images, first.images)
    assert f"cache {cache} is damaged" in capsys.readouterr().err
    assert runs.load_result(cache)[1]["fingerprint"] == first.fingerprint  # rebuilt
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setattr(data, "cache_dir", lambda: blocked / "decoded")  # cannot be created
    assert torch.equal(data.load("cifar10", train=False, root=root).images, first.images)


def test_beyond_mnist_does_not_reuse_a_result_made_from_other_data(tmp_path, monkeypatch):
    """The finished file is reused only if it was made from data with the same fingerprint."""
    def load(name, train=True, root=None, limit=None, download=None):
        return data.Dataset(torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), name, "synthetic",
                            fingerprint="today")

    monkeypatch.setattr(data, "load", load)
    computed = []

    def compute(path, cfg, profile, seed, dataset):  # writes a valid file, as the real one would
        computed.append(dataset.fingerprint)
        arrays = {name: np.zeros([n if n is not None else 1 for n in shape])
                  for name, shape in beyond_mnist._mnist_expected(cfg).items()}
        meta = runs.provenance(profile, "cpu", seed, **cfg)
        meta["data"] = {"source": "synthetic", "fingerprint": recorded}
        runs.save_result(path, arrays, meta)

    monkeypatch.setattr(beyond_mnist, "_compute_beyond_mnist", compute)
    recorded = "yesterday"
    beyond_mnist.run_beyond_mnist("smoke", device="cpu", results=tmp_path)
    assert computed == ["today"]
    beyond_mnist.run_beyond_mnist("smoke", device="cpu", results=tmp_path)   # recorded "yesterday": redone
    assert computed == ["today", "today"]
    recorded = "today"
    beyond_mnist.run_beyond_mnist("smoke", device="cpu", results=tmp_path, resume=False)
    beyond_mnist.run_beyond_mnist("smoke", device="cpu", results=tmp_path)   # same data: reused
    assert computed == ["today", "today", "today"]


# ---------------------------------------------------------------- library inputs

NQM = horizon_bias.noisy_problem(10, 100.0)


@pytest.mark.parametrize("call, message", [
    (lambda: nqm_fixed.fixed_final_loss(*NQM, 0.1, 1.0, 10), r"mu must lie in \[0, 1\); got 1.0"),
    (lambda: nqm_fixed.fixed_final_loss(*NQM, 0.1, 1.5, 10), r"mu must lie in \[0, 1\); got 1.5"),
    (lambda: nqm_fixed.fixed_final_loss(*NQM, -0.1, 0.5, 10), "alpha must be finite and > 0; got -0.1"),
    (lambda: nqm_fixed.fixed_final_loss(*NQM, float("nan"), 0.5, 10), "alpha must be finite and > 0; got nan"),
    (lambda: OnlineSettings(meta_lr=float("inf")), "meta_lr must be finite and > 0; got inf"),
    (lambda: OnlineSettings(clip=0.0), "clip must be finite and > 0; got 0.0"),
    (lambda: pes.MetaTask(NQM, 20, 10, mu=1.0), r"mu must lie in \[0, 1\); got 1.0"),
    (lambda: pes.meta_optimize(pes.MetaTask(NQM, 20, 10), torch.tensor([-3.0]), "pes", lr=float("nan")),
     "lr must be finite and > 0; got nan"),
    (lambda: schedules.Constant("0.1"), "lr must be finite and > 0; got '0.1'"),
])
def test_library_inputs_out_of_range_are_refused_with_one_line(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call()
    _one_line(str(error.value))


def test_a_diverging_pes_meta_optimization_is_reported_as_divergence():
    task = pes.MetaTask(NQM, 20, 10)
    for method in ("truncated", "pes"):
        with pytest.raises(DivergenceError, match=r"exp\(theta\) became (inf|0.0) at step \d+: the run diverged"):
            pes.meta_optimize(task, torch.tensor([-3.0]), method, lr=1e6, episodes=3)


# ---------------------------------------------------------------- data roots

def test_a_data_root_that_is_a_file_is_named_as_a_file(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("")
    with pytest.raises(DataError) as error:
        data.load("mnist", root=target)
    assert f"data root {target} is a file, not a folder" in _one_line(str(error.value))


def test_an_empty_or_missing_class_folder_is_named(tmp_path, own_cache):
    root = _jpeg_root(tmp_path / "a", 0)
    test = root / "cifar10-jpeg" / "test"
    for image in (test / "dog").iterdir():
        image.unlink()
    for image in (test / "ship").iterdir():
        image.unlink()
    (test / "ship").rmdir()
    with pytest.raises(DataError) as error:
        data.load("cifar10", train=False, root=root)
    message = _one_line(str(error.value))
    assert "dog/ (empty)" in message and "ship/ (missing)" in message and str(test) in message


def test_an_online_file_lacking_a_run_s_array_is_refused_with_one_line(tmp_path, synthetic_mnist):
    kw = dict(device="cpu", results=tmp_path, datasets=("mnist",), show_progress=False)
    online.run_online("smoke", **kw)
    path = tmp_path / "online_smoke_seed0.npz"
    arrays, meta = runs.load_result(path)
    victim = next(name for name in arrays if name.endswith("__losses"))
    runs.save_result(path, {k: v for k, v in arrays.items() if k != victim}, meta)  # its manifest agrees
    with pytest.raises(ResultFileError) as error:
        online.run_online("smoke", **kw)
    message = _one_line(str(error.value))
    assert str(path) in message and f"lacks the array {victim!r}" in message


def test_the_earlier_online_archive_holds_every_array_of_its_plan():
    path = online.earlier_archive_path()
    arrays, meta = runs.load_result(path)
    runs.check_arrays(path, arrays, online.gathered_expected(meta["config"]))

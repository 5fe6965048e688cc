"""Grids on Ray and the one compute-and-store path: the cpu grids name the committed entries, a killed grid
resumes to the entries of an uninterrupted one, two processes asking for one spec make one entry, the dry run
writes nothing, Ray starts no more workers than cores and is shut down."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mcmia_lib import engine, grid
from mcmia_lib.cli import book_chapters, resolve_params
from mcmia_lib.paths import REPO_ROOT
from mcmia_lib.store import Store

COMMITTED = Store(REPO_ROOT / "data" / "results")
# a grid of tiny digits targets (the quickstart at the smoke profile, four seeds)
TINY = ["-p", "seeds", "[0, 1, 2, 3]", "-p", "epochs", "40", "-p", "nn_epochs", "5"]


@pytest.mark.parametrize("chapter", [c for c in grid.chapters() if c in book_chapters()])
def test_every_book_chapter_grid_is_in_the_committed_store(chapter):
    """The book's chapters are executed from the store, so a grid that names other specs than its notebook
    (or a spec builder that drifted) shows up as missing entries."""
    p = grid.plan(chapter, resolve_params(chapter, "cpu"), COMMITTED)
    assert not p.missing and not p.pending, [grid.describe(s) for s in p.missing[:5]]
    assert p.stored


def _env(root: Path) -> dict:
    ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths must fit 107 characters
    return {**os.environ, "MCMIA_STORE": str(root / "store"), "MCMIA_WEIGHTS": str(root / "weights"),
            "MCMIA_QUIET": "1", "RAY_TMPDIR": ray_tmp}


def _grid(env, *args, **kw):
    return subprocess.run([sys.executable, "-m", "mcmia_lib.cli", "grid", "quickstart", "--profile", "smoke", *TINY,
                           *args], env=env, capture_output=True, text=True, timeout=600, **kw)


def _results(root: Path) -> dict:
    """Every entry's result without its timings, as JSON text (NaN equals NaN there)."""
    store = Store(root / "store")
    out = {}
    for k in store.keys():
        r = store.load(k).result
        r.pop("provenance")
        for h in r["history"]:
            h.pop("seconds"), h.pop("step_seconds")
        out[k] = json.dumps(r, sort_keys=True)
    return out


def _ray_processes(env) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in ps if env["RAY_TMPDIR"] in line]


def test_a_killed_grid_resumes_to_the_entries_of_an_uninterrupted_one_and_recomputes_a_damaged_one(tmp_path):
    whole, cut = _env(tmp_path / "whole"), _env(tmp_path / "cut")
    done = _grid(whole, "--workers", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not _ray_processes(whole)  # Ray was shut down
    expected = _results(tmp_path / "whole")
    assert len(expected) == 4

    proc = subprocess.Popen([sys.executable, "-m", "mcmia_lib.cli", "grid", "quickstart", "--profile", "smoke", *TINY,
                             "--workers", "2"], env=cut, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    store = Store(tmp_path / "cut" / "store")
    deadline = time.time() + 300
    while not store.keys() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes of its session
    proc.wait()
    assert 1 <= len(store.keys()) <= 4
    resumed = _grid(cut, "--workers", "1")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _results(tmp_path / "cut") == expected
    dry = _grid(cut, "--dry-run")
    assert "4 entries stored, 0 missing" in dry.stdout

    # a damaged entry is not stored: the grid moves it aside, says so in one line and computes it again
    damaged = store.path(store.keys()[0])
    (damaged / "arrays.npz").write_bytes((damaged / "arrays.npz").read_bytes()[:200])  # cut short
    assert "3 entries stored, 1 missing" in _grid(cut, "--dry-run").stdout
    again = _grid(cut, "--workers", "1")
    assert again.returncode == 0, again.stderr[-2000:]
    [aside] = (store.root / ".damaged").iterdir()
    assert (f"mcmia: store entry {damaged} is damaged (arrays.npz: BadZipFile: File is not a zip file); moved it to {aside} "
            "and computing it again\n") in again.stderr
    assert _results(tmp_path / "cut") == expected


def test_the_dry_run_writes_nothing_and_too_many_workers_are_refused(tmp_path):
    env = _env(tmp_path)
    dry = _grid(env, "--dry-run")
    assert dry.returncode == 0 and "0 entries stored, 4 missing" in dry.stdout
    assert not (tmp_path / "store").exists() and not (tmp_path / "weights").exists()
    bad = _grid(env, "--workers", str((os.cpu_count() or 1) + 1))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "cores; choose 1 to" in bad.stderr
    assert not _ray_processes(env)


TWO = """
import json, sys
from mcmia_lib import engine
from mcmia_lib.experiments import quickstart_spec
e = engine.run(quickstart_spec(dict(n_target=300, epochs=60, batch_size=32, lr=0.003, nn_epochs=5), 0))
print(json.dumps(e.result["provenance"]))
"""


def test_two_processes_asking_for_one_spec_make_one_entry(tmp_path):
    env = _env(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", TWO], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    assert outs[0] == outs[1]  # the second loaded what the first stored: one computation
    assert len(Store(tmp_path / "store").keys()) == 1
    assert {"seconds", "hardware", "finished", "code_versions"} <= set(outs[0])


def test_engine_refuses_an_unregistered_spec_and_names_the_kinds():
    with pytest.raises(TypeError, match="no kind of store entry is registered for dict; known: .*ExperimentSpec"):
        engine.run({"dataset": "digits"})


def test_cost_estimates_come_from_entries_of_the_same_settings_else_scaled_by_size(tmp_path):
    from mcmia_lib.defenses.dp import DPSGD
    from mcmia_lib.loo import Pool, PoolModelSpec
    from mcmia_lib.train import TrainConfig
    store = Store(tmp_path / "store")
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05)
    plain = lambda i, pool=Pool("mnist", 1000, 10, 4): PoolModelSpec(pool, "lenet5", cfg, i)  # noqa: E731
    store.save(engine.key(plain(0)), plain(0), {"provenance": {"seconds": 20.0}}, {})
    store.save(engine.key(plain(1)), plain(1), {"provenance": {"seconds": 30.0}}, {})
    costs = grid.stored_costs(store)
    assert grid.estimate(plain(2), costs) == (25.0, "same settings")  # another model index of the grid
    other_pool = plain(2, Pool("mnist", 2000, 10, 4))  # twice the examples, the same 10,000 test images
    assert grid.estimate(other_pool, costs) == (pytest.approx(25.0 * 12_000 / 11_000),
                                                "a similar entry scaled by epochs × examples, ×1.09")
    longer = PoolModelSpec(Pool("mnist", 1000, 10, 4), "lenet5", TrainConfig(epochs=3, batch_size=64, lr=0.05), 0)
    assert grid.estimate(longer, costs)[0] == pytest.approx(75.0)
    dp = PoolModelSpec(Pool("mnist", 1000, 10, 4), "lenet5", cfg, 0, dp=DPSGD(target_epsilon=8.0))
    assert grid.estimate(dp, costs) == (None, "no similar entry stored")  # DP-SGD costs more: no estimate


@pytest.mark.skipif(not (REPO_ROOT.parent / "shared" / "data" / "MNIST").exists(), reason="no shared MNIST copy")
def test_the_smoke_estimate_from_cpu_entries_is_within_3x_of_the_time_it_takes(tmp_store):
    """The committed store holds the cpu-profile entries of 000 (100 epochs on 60,000 images); the smoke
    profile trains 2 epochs on 2,000. Its estimate, scaled from them, is within 3x of what it takes here (it
    said 34.6 core-minutes for about 10 s)."""
    params = resolve_params("mnist_lenet5_baseline", "smoke")
    p = grid.plan("mnist_lenet5_baseline", params, COMMITTED)
    assert len(p.missing) == 3 and not p.unknown
    assert all("scaled by epochs × examples" in how for _, how in p.estimates)
    took = sum(engine.run(spec, tmp_store).result["provenance"]["seconds"] for spec in p.missing)
    assert took / 3 < p.seconds < 3 * took, (p.seconds, took)


def _session_processes(env) -> list[int]:
    """The processes of the Ray session a test's grid started (raylet, GCS, workers, whatever their titles):
    those whose environment names the test's own ``RAY_TMPDIR``."""
    mark = f"RAY_TMPDIR={env['RAY_TMPDIR']}".encode()
    pids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and mark in (d / "environ").read_bytes().split(b"\0"):
                pids.append(int(d.name))
        except OSError:  # gone, or not ours to read
            pass
    return pids


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_a_grid_in_one_line_and_leaves_no_ray_process(tmp_path, signum):
    """Ctrl-C (SIGINT to the terminal's whole process group) or SIGTERM (``kill`` of the grid): one line, no
    traceback and no Ray dump, the stored entries kept, the tasks in flight cancelled and Ray shut down."""
    env = _env(tmp_path)
    eight = ["-p", "seeds", "[0, 1, 2, 3, 4, 5, 6, 7]", "-p", "epochs", "40", "-p", "nn_epochs", "5"]
    proc = subprocess.Popen([sys.executable, "-m", "mcmia_lib.cli", "grid", "quickstart", "--profile", "smoke", *eight,
                             "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    store = Store(tmp_path / "store")
    deadline = time.time() + 300
    while not store.keys() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # what Ctrl-C does
    else:
        proc.send_signal(signum)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + signum, err[-2000:]
    line = re.fullmatch(r"mcmia: interrupted: (\d+) stored, (\d+) in flight; rerun to resume",
                        err.strip().splitlines()[-1])
    assert line, err[-2000:]
    assert "Traceback" not in err and "***" not in err, err[-2000:]
    stored, in_flight = int(line[1]), int(line[2])
    assert 1 <= len(store.keys()) < 8 and all(store.intact(k) for k in store.keys())  # what was stored stays
    assert stored <= len(store.keys()) and 1 <= in_flight and stored + in_flight <= 8  # (a worker may store one
    # after the count; with Ctrl-C the workers get SIGINT too, and a task they stop is neither)
    deadline = time.time() + 15
    while _session_processes(env) and time.time() < deadline:
        time.sleep(0.5)
    assert not _session_processes(env)

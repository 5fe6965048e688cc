import json
from pathlib import Path

import pytest

from mcmia_lib import cli


def test_every_profile_file_sets_every_declared_parameter():
    from mcmia_lib import chapters
    for name in cli.chapters():
        declared = chapters.params_class(name).names()
        for profile in cli.PROFILES:
            params = cli.resolve_params(name, profile)
            assert sorted(params) == sorted(declared), (name, profile)


def test_misspelt_parameter_is_refused_with_valid_names():
    with pytest.raises(cli.UsageError) as err:
        cli.resolve_params("mnist_lenet5_baseline", "smoke", [("epohcs", "3")])
    msg = str(err.value)
    assert "epohcs" in msg and "epochs" in msg and "valid names" in msg


def test_override_is_parsed_as_yaml():
    p = cli.resolve_params("mnist_lenet5_baseline", "smoke", [("seeds", "[0, 1]"), ("lr", "0.01")])
    assert p["seeds"] == [0, 1] and p["lr"] == 0.01 and p["profile"] == "smoke"


def test_unknown_notebook_and_profile():
    with pytest.raises(cli.UsageError, match="available"):
        cli.resolve_params("mnist_lenet", "smoke")
    with pytest.raises(cli.UsageError, match="unknown profile"):
        cli.resolve_params("quickstart", "gpu")


def test_main_exit_code_and_message(capsys):
    assert cli.main(["run", "quickstart", "--profile", "smoke", "-p", "epoch", "3"]) == 2
    assert "valid names" in capsys.readouterr().err


def test_source_hash_tracks_parameters():
    p = cli.resolve_params("quickstart", "smoke")
    assert cli.source_hash("quickstart", p) != cli.source_hash("quickstart", {**p, "epochs": 1})


def test_failed_notebooks_detected(tmp_path):
    ok = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": "hi"}], "metadata": {}}]}
    bad = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "error", "ename": "E"}], "metadata": {}}]}
    (tmp_path / "ok.ipynb").write_text(json.dumps(ok))
    (tmp_path / "bad.ipynb").write_text(json.dumps(bad))
    assert cli.failed_notebooks(sorted(tmp_path.glob("*.ipynb"))) == [str(tmp_path / "bad.ipynb")]


def test_committed_notebooks_ran_without_error():
    assert cli.failed_notebooks(cli.NOTEBOOKS.glob("*.ipynb")) == []
    assert cli.failed_notebooks(cli.BOOK.glob("*.ipynb")) == []


def test_book_chapters_are_executed_at_the_book_profile_and_current():
    """The published chapters must come from the cpu profile with the committed notebook and parameters."""
    assert {"quickstart", "mnist_lenet5_baseline"} <= set(cli.book_chapters())
    for name in cli.book_chapters():
        meta = json.loads((cli.BOOK / f"{name}.ipynb").read_text())["metadata"]["mcmia"]
        assert meta["profile"] == cli.BOOK_PROFILE, name
        assert cli.is_current(name, cli.BOOK_PROFILE), f"{name}: rerun `mcmia run {name} --profile cpu`"


@pytest.mark.parametrize("name,value,message", [
    ("epochs", "abc", "-p epochs: expected a whole number (e.g. 150), got 'abc' (a string)"),
    ("epochs", "0", "-p epochs: must be >= 1, got 0"),
    ("lr", "0", "-p lr: must be > 0, got 0"),
    ("seeds", "[0,1", "-p seeds: '[0,1' is not valid YAML"),
    ("seeds", "3", "-p seeds: expected a list (e.g. [0, 1]), got 3 (a whole number)"),
    ("profile", "cpu", "choose the profile with --profile"),
])
def test_bad_parameters_get_one_line_before_any_kernel_starts(name, value, message, monkeypatch):
    import papermill
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    with pytest.raises(cli.UsageError) as err:
        cli.execute("quickstart", "smoke", [(name, value)])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_good_overrides_pass_the_checks():
    p = cli.resolve_params("mcmia_lenet5", "smoke", [("lr", "1"), ("epochs", "2"), ("pretrain_epochs", "null")])
    assert p["lr"] == 1 and p["pretrain_epochs"] is None
    assert cli.resolve_params("dp_regularization", "smoke", [("nn_epochs", "0")])["nn_epochs"] == 0


def test_a_failed_run_leaves_notebooks_and_book_as_they_were(tmp_path, monkeypatch):
    import papermill

    def fail(src, out, **k):
        Path(out).write_text("{}")
        raise papermill.PapermillExecutionError(0, 1, "x = 1", "RuntimeError", "boom", [])
    monkeypatch.setattr(papermill, "execute_notebook", fail)
    monkeypatch.setattr(cli, "RUNNING", tmp_path / "running")
    before = {p: p.stat().st_mtime_ns for p in list(cli.NOTEBOOKS.iterdir()) + list(cli.BOOK.iterdir())}
    with pytest.raises(cli.UsageError, match="quickstart failed at profile smoke: RuntimeError: boom .*kept at"):
        cli.execute("quickstart", "smoke")
    after = {p: p.stat().st_mtime_ns for p in list(cli.NOTEBOOKS.iterdir()) + list(cli.BOOK.iterdir())}
    assert after == before and (tmp_path / "running" / "quickstart.smoke.ipynb").exists()
    (cli.NOTEBOOKS / ".stray.ipynb").write_text("{}")
    try:
        assert ".stray" not in cli.chapters()
    finally:
        (cli.NOTEBOOKS / ".stray.ipynb").unlink()


def test_clean_accepts_only_existing_well_formed_keys(tmp_path):
    import numpy as np
    from mcmia_lib.store import Store
    store = Store(tmp_path / "store")
    store.save("0123456789abcdef", {"a": 1}, {"r": 1}, {"x": np.zeros(1)})
    (tmp_path / "outside").mkdir()
    for bad in (".", "..", "../outside", "store", "0123456789abcdeg", "/tmp"):
        with pytest.raises(cli.UsageError, match="is not a store key"):
            cli.clean_key(store, bad)
    with pytest.raises(cli.UsageError, match="no such entry"):
        cli.clean_key(store, "fedcba9876543210")
    assert cli.clean_key(store, "0123456789abcdef") == store.path("0123456789abcdef")
    assert store.keys() == [] and (tmp_path / "outside").exists()
    for prefix in ("loo-", "inv-", "sp-", "val-"):  # every registered kind's keys (loo- was refused before)
        store.save(prefix + "0123456789abcdef", {"a": 1}, {"r": 1}, {"x": np.zeros(1)})
        assert cli.clean_key(store, prefix + "0123456789abcdef") == store.path(prefix + "0123456789abcdef")


def test_one_torch_thread_unless_mcmia_threads_says_otherwise(monkeypatch):
    import torch
    from mcmia_lib import threads
    from mcmia_lib.engine import hardware
    monkeypatch.delenv("MCMIA_THREADS", raising=False)
    assert threads.configure() == 1 == torch.get_num_threads()
    monkeypatch.setenv("MCMIA_THREADS", "2")
    assert threads.configure() == 2 == torch.get_num_threads()
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("MCMIA_THREADS", bad)
        with pytest.raises(ValueError, match="MCMIA_THREADS must be a whole number"):
            threads.configure()
    monkeypatch.setenv("MCMIA_THREADS", "1")
    threads.configure()
    hw = hardware()
    assert hw["threads"] == 1 and hw["cpu_model"]


def test_clean_sweeps_temporary_files_a_kill_left(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MCMIA_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("MCMIA_WEIGHTS", str(tmp_path / "weights"))
    (tmp_path / "store" / ".0123456789abcdef.tmp-x").mkdir(parents=True)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / ".k.ckpt.abc.tmp").write_bytes(b"half")
    (tmp_path / "weights" / "k.pt").write_bytes(b"kept")
    assert cli.main(["clean"]) == 0
    out = capsys.readouterr().out
    assert "removed 1 partial entries" in out and "removed 1 temporary weight" in out
    assert [p.name for p in (tmp_path / "weights").iterdir()] == ["k.pt"]
    assert list((tmp_path / "store").iterdir()) == []


def test_a_bad_thread_count_is_one_line_before_any_work():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import mcmia_lib"], env={**__import__("os").environ, "MCMIA_THREADS": "two"},
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip() == (
        "mcmia: error: MCMIA_THREADS must be a whole number >= 1 (torch threads per task), got 'two'")


def test_run_with_missing_entries_is_refused_before_any_kernel(tmp_store, monkeypatch, capsys):
    """Issue 26: `mcmia run` at a non-smoke profile never starts hours of training inside a kernel unasked."""
    def no_kernel(*a, **k):
        raise AssertionError("a kernel was started")
    monkeypatch.setattr(cli, "execute", no_kernel)
    from mcmia_lib import engine, grid
    engine.run(grid.plan("quickstart", cli.resolve_params("quickstart", "cpu", [("seeds", "[0]")])).missing[0])
    assert cli.main(["run", "quickstart", "--profile", "cpu", "-p", "seeds", "[0, 1, 7]"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2 store entries missing, estimated" in err and "core-minutes" in err
    assert "`mcmia grid quickstart --profile cpu -p seeds '[0, 1, 7]'`" in err and "--compute" in err


def test_run_with_compute_runs_the_grid_first_and_smoke_computes_in_the_kernel(tmp_store, monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "execute", lambda name, profile, *a: calls.append(("execute", name, profile)))
    monkeypatch.setattr(cli, "run_grid", lambda name, profile, *a: calls.append(("grid", name, profile)) or 0)
    assert cli.main(["run", "quickstart", "--profile", "cpu", "--compute"]) == 0
    assert calls == [("grid", "quickstart", "cpu"), ("execute", "quickstart", "cpu")]
    calls.clear()
    assert cli.main(["run", "quickstart", "--profile", "smoke"]) == 0
    assert calls == [("execute", "quickstart", "smoke")]

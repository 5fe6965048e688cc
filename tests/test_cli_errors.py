"""Issue 26, point 5: one line (`mcmia: error: …`, exit 2), never a traceback, for a store path that is a file,
a missing or damaged dataset in the dry run, an unwritable `run --output` (checked before execution), a
truncated weights file; and every store path the CLI uses made absolute at start."""
import os
from pathlib import Path

import pytest

from mcmia_lib import cli


@pytest.fixture
def no_kernel(monkeypatch, tmp_path):
    import papermill
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    monkeypatch.setattr(cli, "RUNNING", tmp_path / "running")


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mcmia: error: ") and "Traceback" not in err, err
    return err.strip()


@pytest.mark.parametrize("argv", [["list"], ["grid", "quickstart", "--profile", "smoke", "--dry-run"],
                                  ["grid", "quickstart", "--profile", "smoke"], ["clean"],
                                  ["run", "quickstart", "--profile", "smoke"]])
@pytest.mark.parametrize("var", ["MCMIA_STORE", "MCMIA_WEIGHTS"])
def test_a_store_path_that_is_a_file_is_one_line(argv, var, tmp_store, tmp_path, monkeypatch, capsys, no_kernel):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    monkeypatch.setenv(var, str(afile))
    assert cli.main(argv) == 2
    assert one_line(capsys) == (f"mcmia: error: {var}={afile} is not a folder ({afile} is a file); set {var} to a "
                                "folder (created if missing)")
    monkeypatch.setenv(var, str(afile / "below"))
    assert cli.main(argv) == 2
    assert f"{var}={afile / 'below'} is not a folder ({afile} is a file)" in one_line(capsys)


@pytest.mark.parametrize("damaged", [False, True])
def test_a_missing_or_damaged_dataset_in_the_dry_run_is_one_line(damaged, tmp_store, tmp_path, monkeypatch, capsys):
    from mcmia_lib import data
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setattr(data, "candidate_roots", lambda: [root])
    if damaged:
        (root / "cifar-10-batches-py").mkdir()
        (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a pickle")
    assert cli.main(["grid", "mcmia_cifar10", "--profile", "smoke", "--dry-run"]) == 2
    line = one_line(capsys)
    if damaged:
        assert line.startswith(f"mcmia: error: CorruptDatasetError: {root / 'cifar-10-batches-py'} is present but "
                               "does not load")
    else:
        assert line.startswith("mcmia: error: DatasetNotFoundError: dataset 'cifar10' not found. Tried: "
                               f"{root} (torchvision CIFAR10 layout)")
        assert "Set MCMIA_DATA_DIR to a folder holding it" in line


def test_run_output_to_a_folder_is_refused_before_execution(tmp_store, tmp_path, capsys, no_kernel):
    assert cli.main(["run", "quickstart", "--profile", "smoke", "--output", str(tmp_path)]) == 2
    assert one_line(capsys) == (f"mcmia: error: --output {tmp_path} is a folder; name a file, e.g. "
                                f"{tmp_path / 'quickstart.ipynb'}")


def test_run_output_through_a_file_is_refused_before_execution(tmp_store, tmp_path, capsys, no_kernel):
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "q.ipynb"
    assert cli.main(["run", "quickstart", "--profile", "smoke", "--output", str(out)]) == 2
    assert one_line(capsys) == (f"mcmia: error: cannot write the executed notebook to {out}: {tmp_path / 'afile'} is "
                                "a file; choose another --output")


def _read_only_folder(tmp_path) -> Path:
    """A folder no file can be created in: a chmod 555 folder, or /proc where permissions do not bind (root)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").write_text("")
    except OSError:
        return ro
    (ro / "probe").unlink()
    if Path("/proc/self").exists():
        return Path("/proc")
    pytest.skip("no read-only folder here")


def test_run_output_to_a_read_only_place_is_refused_before_execution(tmp_store, tmp_path, capsys, no_kernel):
    ro = _read_only_folder(tmp_path)
    try:
        out = ro / "sub" / "q.ipynb"
        assert cli.main(["run", "quickstart", "--profile", "smoke", "--output", str(out)]) == 2
        line = one_line(capsys)
        assert line.startswith(f"mcmia: error: cannot write the executed notebook to {out} (") and line.endswith(
            f" in {ro}); choose another --output"), line
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_a_truncated_weights_file_names_the_file_and_a_command_line_fix(tmp_store):
    import io
    import torch
    from mcmia_lib import weights
    key = "0123456789abcdef"
    path = weights.weights_path(key)
    path.parent.mkdir(parents=True)
    buf = io.BytesIO()
    torch.save({"model": torch.nn.Linear(2, 2).state_dict(), "history": [], "seconds": 1.0}, buf)
    path.write_bytes(buf.getvalue()[:200])  # cut by a full disk or a kill outside the atomic write
    with pytest.raises(weights.CorruptWeightsError) as err:
        weights.cached_phase(key, torch.nn.Linear(2, 2), "cpu", lambda ckpt: pytest.fail("retrained"), "train")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"weights file {path} does not load (")
    assert f"delete it (rm {path}) and run again: it is retrained" in msg
    try:
        torch.load(path, weights_only=True)
    except Exception as exc:
        first = str(exc).splitlines()[0].strip()
    detail = msg.split(" does not load (", 1)[1].split("); delete it", 1)[0]
    assert detail.startswith(type(err.value.__cause__).__name__ + ": ")
    words = detail.split(": ", 1)[1]
    if words.endswith("…"):  # cut: at a word boundary of the error's first line
        kept = words[:-1]
        assert first.startswith(kept) and first[len(kept)] in " ,.;:", (kept, first)
    else:
        assert words == first


def test_a_relative_store_path_means_the_same_folder_to_every_command(tmp_path, monkeypatch, capsys, no_kernel):
    import papermill
    monkeypatch.chdir(tmp_path)
    for var, rel in (("MCMIA_STORE", "rel-store"), ("MCMIA_WEIGHTS", "rel-weights"), ("MCMIA_DATA_DIR", "rel-data")):
        monkeypatch.setenv(var, rel)
    assert cli.main(["list"]) == 0
    assert capsys.readouterr().out.strip() == f"store {tmp_path / 'rel-store'} is empty"

    seen = {}

    def kernel(src, out, **k):  # what the kernel (working directory notebooks/) inherits
        seen.update({v: os.environ[v] for v in ("MCMIA_STORE", "MCMIA_WEIGHTS", "MCMIA_DATA_DIR")}, cwd=k["cwd"])
        raise papermill.PapermillExecutionError(0, 1, "x = 1", "RuntimeError", "stop here", [])
    monkeypatch.setattr(papermill, "execute_notebook", kernel)
    assert cli.main(["run", "quickstart", "--profile", "smoke", "--output", str(tmp_path / "q.ipynb")]) == 2
    assert seen == {"MCMIA_STORE": str(tmp_path / "rel-store"), "MCMIA_WEIGHTS": str(tmp_path / "rel-weights"),
                    "MCMIA_DATA_DIR": str(tmp_path / "rel-data"), "cwd": str(cli.NOTEBOOKS)}
    capsys.readouterr()

    assert cli.main(["clean"]) == 0
    out = capsys.readouterr().out
    assert f"from {tmp_path / 'rel-store'}\n" in out and f"from {tmp_path / 'rel-weights'}\n" in out

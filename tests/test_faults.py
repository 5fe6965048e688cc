"""Each fault a user can meet gets one clear message naming the file and the fix, and loses nothing:
wrong or damaged data, a damaged weights file or checkpoint."""
import shutil
import tarfile

import pytest
import torch

from mcmia_lib import data, models, train, weights
from mcmia_lib.runner import ExperimentSpec, run, training_key
from mcmia_lib.weights import weights_path
from mcmia_lib.train import TrainConfig

SHARED = data.REPO_ROOT.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "MNIST").exists(), reason="the shared MNIST copy is not here")


def _copy_mnist(tmp_path, folder="MNIST"):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    for f in (SHARED / "MNIST" / "raw").glob("*-ubyte"):
        shutil.copy(f, raw / f.name)
    return raw


@needs_shared
def test_another_datasets_file_under_mnist_is_named(tmp_path, monkeypatch):
    raw = _copy_mnist(tmp_path)
    shutil.copy(SHARED / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte", raw / "t10k-images-idx3-ubyte")
    monkeypatch.setenv("MCMIA_DATA_DIR", str(tmp_path))
    with pytest.raises(data.CorruptDatasetError, match=r"MNIST/raw/t10k-images-idx3-ubyte is the published "
                                                       r"FashionMNIST/raw/t10k-images-idx3-ubyte .*put the MNIST files there"):
        data.load_dataset("mnist")


@needs_shared
def test_test_labels_in_place_of_training_labels_are_refused(tmp_path, monkeypatch):
    raw = _copy_mnist(tmp_path)
    labels = (raw / "t10k-labels-idx1-ubyte").read_bytes()
    (raw / "train-labels-idx1-ubyte").write_bytes(labels[:20] + bytes([(labels[20] + 1) % 10]) + labels[21:])  # unpublished
    monkeypatch.setenv("MCMIA_DATA_DIR", str(tmp_path))
    with pytest.raises(data.CorruptDatasetError, match="training set has 60,000 images but 10,000 labels"):
        data.load_dataset("mnist")


@needs_shared
def test_a_damaged_root_is_reported_not_skipped(tmp_path, monkeypatch):
    raw = _copy_mnist(tmp_path)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03 not an idx file")
    monkeypatch.setenv("MCMIA_DATA_DIR", str(tmp_path))
    with pytest.raises(data.CorruptDatasetError, match="MNIST is present but does not load"):
        data.load_dataset("mnist")


def test_a_truncated_archive_names_the_file_and_the_published_hash(tmp_path, monkeypatch):
    src = tmp_path / "src" / "CIFAR10-JPEG" / "train" / "airplane"
    src.mkdir(parents=True)
    from PIL import Image
    Image.new("RGB", (32, 32)).save(src / "0.jpg")
    archive = tmp_path / "root" / data.CIFAR10_JPEG_ARCHIVE
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "CIFAR10-JPEG", arcname="CIFAR10-JPEG")
    archive.write_bytes(archive.read_bytes()[:-30])
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path)  # the decoded cache goes to a scratch folder
    with pytest.raises(data.CorruptDatasetError, match=r"CIFAR10-JPEG.tar.gz is damaged .*copy it again"):
        data._load_cifar10_jpeg(archive)


def test_sizes_are_checked_after_loading():
    ds = data.load_dataset("digits")
    bad = data.Dataset("mnist", "MNIST", ds.x_train, ds.y_train[:10], ds.x_test, ds.y_test, 10)
    with pytest.raises(data.CorruptDatasetError, match="training set has 898 images but 10 labels"):
        data.check_sizes(bad, "somewhere")
    wrong = data.Dataset("mnist", "MNIST", ds.x_train, ds.y_train, ds.x_test, ds.y_test, 10)
    with pytest.raises(data.CorruptDatasetError, match="should have 60,000 training and 10,000 test images"):
        data.check_sizes(wrong, "somewhere")


SPEC = ExperimentSpec("digits", "mlp", TrainConfig(epochs=2, batch_size=64, lr=1e-3, optimizer="adam"), nn_attack=None)


def test_a_damaged_weights_file_is_named_and_recompute_retrains_past_it(tmp_store):
    first = run(SPEC, tmp_store)
    path = weights_path(training_key(SPEC))
    path.write_bytes(b"not a checkpoint")
    tmp_store.delete(first.key)
    with pytest.raises(weights.CorruptWeightsError, match=f"weights file {path} does not load .*recompute=True"):
        run(SPEC, tmp_store)
    again = run(SPEC, tmp_store, recompute=True)
    assert again.result["test_acc"] == first.result["test_acc"]
    assert torch.load(path, weights_only=True)["model"]


def test_a_damaged_checkpoint_is_moved_aside_and_training_starts_over(tmp_path, capsys):
    ds = data.load_dataset("digits")
    ckpt = tmp_path / "run.ckpt"
    ckpt.write_bytes(b"garbage")
    torch.manual_seed(0)
    model = models.build_model("mlp", 10, ds.shape)
    hist = train.train(model, ds, range(200), TrainConfig(epochs=2, batch_size=50, lr=1e-3), seed=0, checkpoint=ckpt)
    assert [h["epoch"] for h in hist] == [1, 2]
    assert (tmp_path / "run.ckpt.corrupt").read_bytes() == b"garbage"
    assert "moved to" in capsys.readouterr().err


# -- damaged store entries, clean during a run, no Ray cluster, file modes (issue 26) ---------------------------

def _quickstart_entry(store):
    """A stored entry of the smoke quickstart's one spec (its result made up: nothing is trained)."""
    import numpy as np
    from mcmia_lib import engine
    from mcmia_lib.cli import resolve_params
    from mcmia_lib.experiments import quickstart_spec
    params = resolve_params("quickstart", "smoke")
    spec = quickstart_spec(params, params["seeds"][0])
    e = store.save(engine.key(spec), spec, {"test_acc": 0.9, "provenance": {"seconds": 3.0}},
                   {"scores": np.arange(1000, dtype=np.float64)})
    return params, spec, e.path


def _flip_a_byte_inside(data: bytes) -> bytes:
    """The arrays' zip with one byte of the compressed data changed: it still opens, its CRC check fails."""
    i = len(data) // 3
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "a flipped byte", "result.json"])
def test_a_damaged_entry_is_not_stored_and_the_dry_run_says_so(tmp_store, damage, capsys):
    from mcmia_lib import cli, engine, grid
    params, spec, path = _quickstart_entry(tmp_store)
    assert engine.is_stored(spec, tmp_store)
    npz = path / "arrays.npz"
    if damage == "truncated":
        npz.write_bytes(npz.read_bytes()[:len(npz.read_bytes()) // 2])
    elif damage == "garbage":
        npz.write_bytes(b"not a zip at all")
    elif damage == "a flipped byte":
        npz.write_bytes(_flip_a_byte_inside(npz.read_bytes()))
    else:
        (path / "result.json").write_text('{"test_acc": 0.9, "provenance"')
    assert tmp_store.has(path.name) and not engine.is_stored(spec, tmp_store)
    p = grid.plan("quickstart", params, tmp_store)
    assert (p.stored, p.missing, p.damaged) == ([], [spec], [spec])
    assert tmp_store.problem(path.name)
    assert cli.main(["grid", "quickstart", "--profile", "smoke", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "0 entries stored, 1 missing" in out and "1 of them damaged" in out
    aside = tmp_store.move_aside(path.name)
    assert aside.parent == tmp_store.root / ".damaged" and aside.name.startswith(path.name + ".")
    assert not path.exists() and tmp_store.keys() == [] and (aside / "spec.json").exists()


def test_clean_leaves_the_files_of_a_run_that_holds_its_lock(tmp_store, capsys):
    """A grid's task holds the entry's lock (and, while training, the phase's) while it writes checkpoints
    and the entry: ``mcmia clean`` removes only what a killed run left."""
    from mcmia_lib import cli, engine
    weights = weights_path("x").parent
    weights.mkdir(parents=True)
    live, phase, dead = "loo-0123456789abcdef", "fedcba9876543210", "00000000000000aa"
    files = [tmp_store.root / f".{live}.tmp-abc", weights / f".{live}.ckpt.ftp8aaeg.tmp",
             weights / f".{phase}.ckpt.x1.tmp", weights / f".{phase}.pt.x2.tmp"]
    stale = [tmp_store.root / f".{dead}.tmp-def", weights / f".{dead}.ckpt.y.tmp"]
    for f in files + stale:
        f.mkdir(parents=True) if ".tmp-" in f.name else f.write_bytes(b"half")
    with engine.file_lock(tmp_store.root / ".locks" / live), engine.file_lock(weights / ".locks" / phase):
        (tmp_store.root / ".locks" / dead).touch()  # a lock file nobody holds: its run was killed
        assert cli.main(["clean"]) == 0
        out = capsys.readouterr().out
        assert "removed 1 partial entries" in out and "removed 1 temporary weight" in out
        assert all(f.exists() for f in files) and not any(f.exists() for f in stale)
    assert cli.main(["clean"]) == 0  # the run ended (here: without cleaning up after itself)
    assert not any(f.exists() for f in files)
    assert "removed 1 partial entries" in capsys.readouterr().out


def test_an_address_where_nothing_listens_fails_in_one_line(tmp_path):
    import subprocess
    import sys
    import time
    env = {**__import__("os").environ, "MCMIA_STORE": str(tmp_path / "store"), "MCMIA_WEIGHTS": str(tmp_path / "w")}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "mcmia_lib.cli", "grid", "quickstart", "--profile", "smoke",
                           "--address", "127.0.0.1:1"], env=env, capture_output=True, text=True, timeout=60)
    assert time.time() - t0 < 30
    assert proc.returncode == 2 and proc.stderr == (
        "mcmia: error: no Ray cluster at 127.0.0.1:1: connection refused; start one with `ray start --head` or "
        "omit --address\n")


def test_address_auto_without_a_cluster_fails_in_one_line(tmp_store, monkeypatch, capsys):
    from ray._private import services
    from mcmia_lib import cli
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    none = lambda: frozenset()  # noqa: E731 (other sessions' Rays, e.g. other tests', stay unseen)
    none.cache_clear = lambda: None
    monkeypatch.setattr(services, "find_gcs_addresses", none)
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir: None)
    assert cli.main(["grid", "quickstart", "--profile", "smoke", "--address", "auto"]) == 2
    assert capsys.readouterr().err == ("mcmia: error: no Ray cluster at auto: none is running on this machine; "
                                       "start one with `ray start --head` or omit --address\n")


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_store_and_weights_files_get_the_users_umask(tmp_store, umask):
    import os
    from mcmia_lib.paths import atomic_write_bytes
    old = os.umask(umask)
    try:
        _, _, path = _quickstart_entry(tmp_store)
        atomic_write_bytes(weights_path("k"), b"weights")
    finally:
        os.umask(old)
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(path) == 0o777 & ~umask and mode(tmp_store.root) == 0o777 & ~umask
    assert {mode(f) for f in path.iterdir()} == {0o666 & ~umask}
    assert mode(weights_path("k")) == 0o666 & ~umask

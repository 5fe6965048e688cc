"""Each fault a user can meet gets one clear message naming the file and the fix, and loses nothing:
wrong or damaged data, a damaged weights file or checkpoint."""
import shutil
import tarfile

import pytest
import torch

from mcmia_lib import data, models, runner, train
from mcmia_lib.runner import ExperimentSpec, run, training_key, weights_path
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
    with pytest.raises(runner.CorruptWeightsError, match=f"weights file {path} does not load .*recompute=True"):
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

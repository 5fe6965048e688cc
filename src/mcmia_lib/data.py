"""Datasets as resident uint8 tensors, seeded splits, and batched tensor augmentation.

Dataset root resolution (DESIGN.md): ``$MCMIA_DATA_DIR``, then ``../shared/data`` next to the
checkout, then ``data/`` of the checkout, then torchvision's download where the network allows.
"""
from __future__ import annotations

import functools
import hashlib
import io
import os
import sys
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .paths import REPO_ROOT, atomic_write_bytes

DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "digits")
CIFAR10_JPEG_ARCHIVE = "CIFAR10-JPEG.tar.gz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is missing from every root tried; the message lists them and how to provide it."""


class CorruptDatasetError(RuntimeError):
    """A dataset's files are present but wrong (damaged, truncated, another dataset's or split's); the
    message names the file and the fix."""


# Published SHA-256 of the shared copies (../shared/data/README.md). A file that is another dataset's
# published file is refused; a file matching none of them is a custom copy, allowed (its fingerprint then
# enters the store keys).
PUBLISHED_SHA256 = {
    "MNIST/raw/t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "MNIST/raw/t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "MNIST/raw/train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "MNIST/raw/train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "FashionMNIST/raw/t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "FashionMNIST/raw/t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    "FashionMNIST/raw/train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "FashionMNIST/raw/train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    CIFAR10_JPEG_ARCHIVE: "bae63d4260c9fa0b05635695668e8e76e69b11fbc4a181b8a07e65780aba2ca7",
}
# (train, test) sizes and image shape of each dataset, checked after every load.
EXPECTED = {"mnist": (60000, 10000, (1, 28, 28)), "fashion_mnist": (60000, 10000, (1, 28, 28)),
            "cifar10": (50000, 10000, (3, 32, 32)), "cifar100": (50000, 10000, (3, 32, 32))}


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256(path: Path) -> str:
    """SHA-256 of a file (cached per path, size and modification time)."""
    st = Path(path).stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def check_published(root: Path, folder: str) -> None:
    """Refuse a file under ``root/folder`` that is another dataset's published file (e.g. Fashion-MNIST's
    images under MNIST/)."""
    by_hash = {v: k for k, v in PUBLISHED_SHA256.items()}
    for f in sorted((root / folder / "raw").glob("*-ubyte")):
        rel = f"{folder}/raw/{f.name}"
        other = by_hash.get(sha256(f))
        if other is not None and other != rel:
            raise CorruptDatasetError(f"{f} is the published {other} (another dataset's or split's file under "
                                      f"{folder}/): put the {folder} files there")


def check_sizes(ds: "Dataset", where: str) -> None:
    """Images and labels of equal length, and the dataset's expected sizes and image shape."""
    for split, x, y in (("training", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        if len(x) != len(y):
            raise CorruptDatasetError(f"{where}: the {split} set has {len(x):,} images but {len(y):,} labels "
                                      "(a labels file of the other split?)")
    if ds.name in EXPECTED:
        n_train, n_test, shape = EXPECTED[ds.name]
        if (len(ds.y_train), len(ds.y_test), tuple(ds.x_train.shape[1:])) != (n_train, n_test, shape):
            raise CorruptDatasetError(
                f"{where}: {ds.label} should have {n_train:,} training and {n_test:,} test images of shape {shape}, "
                f"found {len(ds.y_train):,} and {len(ds.y_test):,} of shape {tuple(ds.x_train.shape[1:])}")


@dataclass(frozen=True)
class Dataset:
    """A whole dataset in memory: images uint8 (N, C, H, W), labels int64 (N,)."""

    name: str
    label: str  # how results must name it, e.g. "CIFAR-10 (JPEG copy)"
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple = field(default=())
    std: tuple = field(default=())

    @property
    def shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    def to(self, device) -> "Dataset":
        move = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")}
        return Dataset(self.name, self.label, num_classes=self.num_classes, mean=self.mean, std=self.std, **move)


def fingerprint(ds: Dataset) -> str:
    """SHA-256 (first 16 hex digits) of a dataset's images and labels, train then test: its content identity
    in store keys (the same name may be the JPEG copy, the official files or a custom folder)."""
    h = hashlib.sha256()
    for t in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def dataset_fingerprint(name: str) -> str:
    """``fingerprint`` of the dataset ``name`` as ``load_dataset`` finds it (once per process)."""
    return fingerprint(load_dataset(name))


# The copies every stored entry was computed on (../shared/data: MNIST and Fashion-MNIST in torchvision's
# layout, CIFAR-10 as the JPEG copy; scikit-learn's digits). Keys of specs on these copies carry no fingerprint, so they kept the
# keys they had before fingerprints entered keys; any other copy adds its fingerprint (store.spec_key).
REFERENCE_FINGERPRINTS = {"mnist": "a29846c00097402e", "fashion_mnist": "36e93975cb25501b",
                          "cifar10": "36ccc5b7c34f019f", "digits": "37368aca7b72d2b2"}


def candidate_roots() -> list[Path]:
    """Dataset roots in resolution order (existing or not)."""
    roots = []
    if os.environ.get("MCMIA_DATA_DIR"):
        roots.append(Path(os.environ["MCMIA_DATA_DIR"]))
    roots += [REPO_ROOT.parent / "shared" / "data", REPO_ROOT / "data"]
    return roots


def _missing(name: str, tried: list[str], hint: str) -> DatasetNotFoundError:
    lines = "\n  ".join(tried)
    return DatasetNotFoundError(
        f"dataset {name!r} not found. Tried:\n  {lines}\n{hint}\n"
        "Set MCMIA_DATA_DIR to a folder holding it, or put it under ../shared/data or data/.")


def _stats(x: torch.Tensor) -> tuple[tuple, tuple]:
    xf = x.float().div_(255)
    return tuple(xf.mean(dim=(0, 2, 3)).tolist()), tuple(xf.std(dim=(0, 2, 3)).tolist())


def _make(name, label, xtr, ytr, xte, yte, k) -> Dataset:
    xtr, xte = torch.as_tensor(xtr, dtype=torch.uint8), torch.as_tensor(xte, dtype=torch.uint8)
    ytr, yte = torch.as_tensor(ytr, dtype=torch.int64), torch.as_tensor(yte, dtype=torch.int64)
    mean, std = _stats(xtr)
    return Dataset(name, label, xtr, ytr, xte, yte, k, mean, std)


def _load_torchvision(name: str, download: bool) -> Dataset:
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST,
           "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}[name]
    label = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}[name]
    tried = []
    roots = candidate_roots()
    for root in roots:
        folder = root / cls.__name__ if name in ("mnist", "fashion_mnist") else root / "cifar-10-batches-py"
        if not folder.exists():
            tried.append(f"{root} (torchvision {cls.__name__} layout)")
            continue
        if name in ("mnist", "fashion_mnist"):
            check_published(root, cls.__name__)
        try:
            tr, te = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
            ds = _from_tv(name, label, tr, te)
        except Exception as exc:  # present but unreadable: say so rather than try the next root
            raise CorruptDatasetError(f"{folder} is present but does not load ({type(exc).__name__}: {exc}); "
                                      "replace it with a complete copy or remove it") from exc
        check_sizes(ds, str(folder))
        return ds
    if name == "cifar10":
        for root in roots:
            archive = root / CIFAR10_JPEG_ARCHIVE
            if archive.exists():
                ds = _load_cifar10_jpeg(archive)
                check_sizes(ds, str(archive))
                return ds
            tried.append(str(archive))
    if download:
        root = REPO_ROOT / "data"
        try:
            tr, te = cls(str(root), train=True, download=True), cls(str(root), train=False, download=True)
            return _from_tv(name, label, tr, te)
        except Exception as exc:  # network errors vary by platform
            tried.append(f"download into {root} failed: {type(exc).__name__}: {exc}")
    raise _missing(name, tried, f"Provide the torchvision {cls.__name__} files (or run where download works, "
                                "with download=True).")


def _from_tv(name, label, tr, te) -> Dataset:
    def arr(ds):
        x = ds.data if isinstance(ds.data, np.ndarray) else ds.data.numpy()
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x), np.asarray(ds.targets)
    (xtr, ytr), (xte, yte) = arr(tr), arr(te)
    return _make(name, label, xtr, ytr, xte, yte, len(tr.classes))


def _decode_cifar10_jpeg(archive: Path) -> dict:
    from PIL import Image
    parts = {"train": [], "test": []}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                bits = member.name.split("/")
                if not member.isfile() or len(bits) != 4 or not bits[3].endswith(".jpg"):
                    continue
                img = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
                parts[bits[1]].append((bits[2], bits[3], np.asarray(img, dtype=np.uint8)))
    except (EOFError, OSError, tarfile.TarError, zlib.error) as exc:
        raise CorruptDatasetError(f"{archive} is damaged ({type(exc).__name__}: {exc}); copy it again (published "
                                  f"SHA-256 {PUBLISHED_SHA256[CIFAR10_JPEG_ARCHIVE][:12]}…)") from exc
    arrays = {}
    for split, xs in parts.items():
        xs.sort(key=lambda t: (CIFAR10_CLASSES.index(t[0]), t[1]))
        arrays[f"x_{split}"] = np.stack([t[2] for t in xs]).transpose(0, 3, 1, 2) if xs else np.zeros((0, 3, 32, 32), np.uint8)
        arrays[f"y_{split}"] = np.array([CIFAR10_CLASSES.index(t[0]) for t in xs], dtype=np.int64)
    return arrays


def _load_cifar10_jpeg(archive: Path) -> Dataset:
    """Decode the JPEG copy of CIFAR-10 once and cache the uint8 arrays under data/cache/, in a file named by
    the archive's SHA-256 (another archive never reads this one's cache). A damaged cache is rebuilt."""
    cache = REPO_ROOT / "data" / "cache" / f"cifar10_jpeg-{sha256(archive)[:16]}.npz"
    arrays = None
    if cache.exists():
        try:
            with np.load(cache) as z:
                arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
        except Exception as exc:
            print(f"mcmia: the decoded cache {cache} is damaged ({type(exc).__name__}); rebuilding it from {archive}",
                  file=sys.stderr)
    if arrays is None:
        arrays = _decode_cifar10_jpeg(archive)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(cache, buf.getvalue())
    return _make("cifar10", "CIFAR-10 (JPEG copy)", arrays["x_train"], arrays["y_train"], arrays["x_test"],
                 arrays["y_test"], 10)


def _load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (always available), split 50/50 with a fixed seed into train/test."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = np.round(d.images * (255 / 16)).astype(np.uint8)[:, None]
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[: len(x) // 2], perm[len(x) // 2:]
    return _make("digits", "scikit-learn digits", x[tr], d.target[tr], x[te], d.target[te], 10)


def load_dataset(name: str, device="cpu", download: bool = False) -> Dataset:
    """Load ``name`` (one of ``DATASETS``) fully into memory on ``device`` as uint8 tensors."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    ds = _load_digits() if name == "digits" else _load_torchvision(name, download)
    return ds.to(device)


# ----------------------------------------------------------------------------------------------- splits

def partition(n: int, sizes: list[int], seed: int) -> list[np.ndarray]:
    """Disjoint random index sets of the given sizes from ``range(n)``, a pure function of ``seed``."""
    if any(s < 0 for s in sizes) or sum(sizes) > n:
        raise ValueError(f"cannot draw disjoint parts of sizes {sizes} (total {sum(sizes)}) from {n} examples")
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0, *sizes])
    return [np.sort(perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


@dataclass(frozen=True)
class MembershipSplit:
    """Index sets of the MCMIA protocol (001, App. D): the target trains on ``target_train``; the attack
    trains on D = ``attack_in`` (half of the target's training data) vs D' = ``attack_out`` (half of the
    test data) and is evaluated on the other halves, balanced: ``eval_in`` (members) vs ``eval_out``."""

    target_train: np.ndarray  # indices into the training set
    attack_in: np.ndarray  # training-set indices, members used to fit/calibrate attacks
    attack_out: np.ndarray  # test-set indices, non-members used to fit/calibrate attacks
    eval_in: np.ndarray  # training-set indices, members for evaluation
    eval_out: np.ndarray  # test-set indices, non-members for evaluation


def membership_split(n_train: int, n_test: int, seed: int, n_target: int | None = None) -> MembershipSplit:
    """Split a dataset for the MCMIA protocol; ``n_target`` < ``n_train`` trains on a seeded subset.

    The evaluation set takes equally many random members (from the second half of the target's training
    data) and non-members (from the second half of the test set), so attack accuracy is balanced.
    """
    n_target = n_train if n_target is None else n_target
    if not 2 <= n_target <= n_train:
        raise ValueError(f"n_target must be in [2, {n_train}], got {n_target}")
    if n_test < 2:
        raise ValueError(f"need at least 2 test examples, got {n_test}")
    rng = np.random.default_rng([seed, 1])
    target = np.sort(rng.permutation(n_train)[:n_target])
    members = rng.permutation(target)
    half_in = n_target // 2
    attack_in, rest_in = np.sort(members[:half_in]), members[half_in:]
    outs = rng.permutation(n_test)
    half_out = n_test // 2
    n_eval = min(len(rest_in), n_test - half_out)
    attack_out = np.sort(outs[:half_out])
    eval_in, eval_out = np.sort(rest_in[:n_eval]), np.sort(outs[half_out:half_out + n_eval])
    return MembershipSplit(target, attack_in, attack_out, eval_in, eval_out)


@dataclass(frozen=True)
class ShadowSplit:
    """Gonon et al.'s split (002, Sec. 4): the pooled images (training then test set) cut into four disjoint
    parts of equal size, the target's and the shadow's training and test data; of each training part,
    ``val`` images are held out for model selection, the rest (``*_train``) is what the network trains on
    and what the attack calls members. Indices into ``pooled(ds)``."""

    target_train: np.ndarray
    target_val: np.ndarray
    target_test: np.ndarray
    shadow_train: np.ndarray
    shadow_val: np.ndarray
    shadow_test: np.ndarray

    def role(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(train, val, test) indices of the ``target`` or the ``shadow`` network."""
        if name not in ("target", "shadow"):
            raise ValueError(f"role must be 'target' or 'shadow', got {name!r}")
        return getattr(self, f"{name}_train"), getattr(self, f"{name}_val"), getattr(self, f"{name}_test")


def shadow_split(n: int, part: int, val: int, seed: int) -> ShadowSplit:
    """002's split of ``n`` pooled images into four parts of ``part`` images (002: 15,000 of CIFAR-10's 60,000),
    ``val`` of each training part held out (002: 1,000); a pure function of ``seed``."""
    if not 0 < val < part:
        raise ValueError(f"val must be in (0, part={part}), got {val}")
    tt, te, st, se = partition(n, [part] * 4, seed)  # raises when 4 * part > n
    rng = np.random.default_rng([seed, 3])
    tv, sv = (np.sort(rng.choice(p, val, replace=False)) for p in (tt, st))
    return ShadowSplit(np.setdiff1d(tt, tv), tv, te, np.setdiff1d(st, sv), sv, se)


def pooled(ds: Dataset) -> Dataset:
    """``ds`` with its training and test images concatenated as the training set (002 splits all 60,000
    CIFAR-10 images), normalised with the training set's statistics as before; the test set is empty."""
    return Dataset(ds.name, ds.label, torch.cat([ds.x_train, ds.x_test]), torch.cat([ds.y_train, ds.y_test]),
                   ds.x_test[:0], ds.y_test[:0], ds.num_classes, ds.mean, ds.std)


# ------------------------------------------------------------------------------------- preprocessing

def normalize(x_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 images -> float, standardised per channel with the training set's mean and std, in channels-last
    memory order, like the models from ``models.build_model``."""
    m = torch.tensor(mean, device=x_uint8.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x_uint8.device).view(1, -1, 1, 1)
    return ((x_uint8.float().div_(255) - m) / s).contiguous(memory_format=torch.channels_last)


def augment(x: torch.Tensor, flip: bool, crop_pad: int, generator: torch.Generator) -> torch.Tensor:
    """Batched random horizontal flip and random ``crop_pad``-padded crop (zero padding), as tensor ops."""
    b, c, h, w = x.shape
    dev = x.device
    if flip:
        mask = torch.rand(b, generator=generator, device=generator.device).to(dev) < 0.5
        x = torch.where(mask.view(b, 1, 1, 1), x.flip(3), x)
    if crop_pad > 0:
        p = crop_pad
        xp = torch.nn.functional.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=generator.device).to(dev)
        dx = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=generator.device).to(dev)
        ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
        rows = (dy.view(b, 1, 1, 1) + ar_h.view(1, 1, h, 1)).expand(b, c, h, w + 2 * p)
        cols = (dx.view(b, 1, 1, 1) + ar_w.view(1, 1, 1, w)).expand(b, c, h, w)
        xp = xp.gather(2, rows)
        x = xp.gather(3, cols)
    return x


def default_device() -> torch.device:
    """``cuda`` when present, else ``cpu`` (every published number here is made on the CPU)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")

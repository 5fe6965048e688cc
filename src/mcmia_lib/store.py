"""Results store: an experiment's frozen spec hashes to a key; its entry is a folder holding
``spec.json``, ``result.json`` (metrics, histories, provenance) and ``arrays.npz`` (per-example scores).

Entries are written to a temporary folder and renamed into place (an existing entry is swapped out in one
step), so a run killed midway leaves no half entry; folders and files get the user's umask. An entry counts
as stored only when it reads back (``intact``: its JSON parses, its arrays pass their CRC check); a damaged
one is moved aside to ``.damaged/`` (``move_aside``) and recomputed by the grid. The root is
``$MCMIA_STORE`` or ``data/results`` of the checkout.

A key hashes the canonical spec, the versions of the components that produce the entry, and the content
fingerprint of each dataset the spec names (``data.fingerprint``). Two encodings keep stored keys stable as
the scheme grows, as dropping ``None`` fields does for new spec fields: a component added after entries were
stored (``LATER_COMPONENTS``) enters the key from its version 2 on, and a dataset identical to the copy the
store was computed on (``data.REFERENCE_FINGERPRINTS``) adds nothing. ``tests/test_keys.py`` recomputes every
stored entry's key from its ``spec.json``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import ctypes
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .paths import REPO_ROOT, dir_mode, remove_unless_locked

# Bump a component's version when a change alters its numbers: old entries then no longer match.
VERSIONS = {"data": 1, "models": 1, "train": 2, "attacks": 2, "metrics": 1,
            "defenses": 1, "sparsity": 1, "shadow_attack": 2}
# History: train 2 / attacks 2 = scores computed without float64 saturation (loss, confidence, entropies);
# shadow_attack 2 = 002's discriminator chosen on a held-out half of the shadow, not on the target.
LATER_COMPONENTS = ("defenses", "sparsity", "shadow_attack")  # in keys from version 2 on (module docstring)
TRAINING_COMPONENTS = ("data", "models", "train", "defenses")  # a trained model (defenses shape its weights)
RUN_COMPONENTS = TRAINING_COMPONENTS + ("attacks", "metrics")  # runner.run's entries
SPARSITY_COMPONENTS = RUN_COMPONENTS + ("sparsity", "shadow_attack")  # 002's results


class CorruptEntryError(RuntimeError):
    """A stored entry cannot be read; the message names its path and how to recompute it."""


def canonical(obj):
    """JSON-ready form of a spec: dataclasses become dicts with their type name; ``None`` fields are
    dropped, so adding an optional field later leaves existing keys unchanged."""
    if dataclasses.is_dataclass(obj):
        d = {f.name: canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)
             if getattr(obj, f.name) is not None}
        return {"__type__": type(obj).__name__, **d}
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items()) if v is not None}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    return obj


def _dataset_names(obj) -> set[str]:
    """Every value of a ``dataset`` field in a canonical spec, however deeply nested."""
    if isinstance(obj, dict):
        found = {obj["dataset"]} if isinstance(obj.get("dataset"), str) else set()
        return found.union(*(_dataset_names(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(_dataset_names(v) for v in obj))
    return set()


def spec_key(spec, components) -> str:
    """SHA-256 (first 16 hex digits) of the canonical spec, the versions of ``components`` (those that
    produce the entry: ``TRAINING_COMPONENTS``, ``RUN_COMPONENTS``, ...) and the datasets' fingerprints."""
    from .data import REFERENCE_FINGERPRINTS, dataset_fingerprint
    unknown = set(components) - set(VERSIONS)
    if unknown:
        raise ValueError(f"unknown store components {sorted(unknown)}; known: {sorted(VERSIONS)}")
    versions = {k: VERSIONS[k] for k in components if not (k in LATER_COMPONENTS and VERSIONS[k] == 1)}
    body = canonical(spec)
    content = {"spec": body, "versions": versions}
    prints = {n: fp for n in sorted(_dataset_names(body))
              if (fp := dataset_fingerprint(n)) != REFERENCE_FINGERPRINTS.get(n)}
    if prints:
        content["data"] = prints
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_RENAME_EXCHANGE = 2  # renameat2 flag (Linux >= 3.15): swap two paths atomically


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` in one step; False where the system cannot (then the caller falls
    back to rename-aside)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD = -100
    return fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


@dataclass
class Entry:
    """A stored entry: its key, spec and result (JSON) and per-example arrays. The accessors read the result of a
    trained target (``runner``, ``loo``); a key the entry's kind does not record raises ``KeyError``."""

    key: str
    spec: dict
    result: dict
    arrays: dict = field(default_factory=dict)
    path: Path | None = None
    phases: list = field(default_factory=list)  # weights keys of its training phases (``engine.phases``), if known

    @property
    def test_acc(self) -> float:
        return self.result["test_acc"]

    @property
    def train_acc(self) -> float:
        """Accuracy on the members."""
        return self.result["train_acc"]

    @property
    def history(self) -> list[dict]:
        """One record per training epoch (all phases)."""
        return self.result["history"]

    @property
    def seconds(self) -> float:
        """Wall seconds of computing the entry."""
        return self.result["provenance"]["seconds"]

    def attack(self, name: str) -> dict:
        """The metrics of attack ``name`` (``accuracy``, ``auc``, ``tpr@0.01``, ...)."""
        return self.result["attacks"][name]


def default_root() -> Path:
    return Path(os.environ.get("MCMIA_STORE", REPO_ROOT / "data" / "results"))


class Store:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_root()

    def path(self, key: str) -> Path:
        return self.root / key

    def has(self, key: str) -> bool:
        """An entry folder with a result is there (it may still be damaged: ``intact``)."""
        return (self.path(key) / "result.json").exists()

    def problem(self, key: str) -> str | None:
        """Why the entry does not read back (a JSON file that does not parse, arrays that are not a zip or
        fail its CRC check), naming the file; None when it is whole. Reads every byte, builds no array."""
        p = self.path(key)
        name = "spec.json"
        try:
            for name in ("spec.json", "result.json"):
                json.loads((p / name).read_text())
            name = "arrays.npz"
            with zipfile.ZipFile(p / name) as z:
                bad = z.testzip()
            if bad is not None:
                return f"arrays.npz: {bad} fails its CRC check"
        except Exception as exc:
            return f"{name}: {type(exc).__name__}: {str(exc)[:120]}"
        return None

    def intact(self, key: str) -> bool:
        """The entry is stored and reads back: what counts as stored."""
        return self.has(key) and self.problem(key) is None

    def move_aside(self, key: str) -> Path:
        """Move a (damaged) entry to ``<root>/.damaged/<key>.<time>`` and return where it went."""
        aside = self.root / ".damaged" / f"{key}.{time.strftime('%Y%m%d-%H%M%S')}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while aside.exists():
            aside, n = aside.with_name(f"{key}.{time.strftime('%Y%m%d-%H%M%S')}-{n}"), n + 1
        os.rename(self.path(key), aside)
        return aside

    def load(self, key: str) -> Entry:
        p = self.path(key)
        try:
            spec = json.loads((p / "spec.json").read_text())
            result = json.loads((p / "result.json").read_text())
            with np.load(p / "arrays.npz") as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:
            raise CorruptEntryError(
                f"store entry {p} is unreadable ({type(exc).__name__}: {exc}); "
                "recompute it with recompute=True (CLI: `mcmia clean --key " + key + "`) or delete the folder"
            ) from exc
        return Entry(key, spec, result, arrays, p)

    def save(self, key: str, spec, result: dict, arrays: dict) -> Entry:
        """Write an entry atomically (temporary folder + rename); an existing entry is replaced."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{key}.tmp-"))
        try:
            os.chmod(tmp, dir_mode())  # mkdtemp makes it owner-only; the entry gets the user's umask
            (tmp / "spec.json").write_text(json.dumps(canonical(spec), indent=1, sort_keys=True))
            (tmp / "result.json").write_text(json.dumps(result, indent=1, sort_keys=True, allow_nan=True))
            buf = io.BytesIO()
            np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
            (tmp / "arrays.npz").write_bytes(buf.getvalue())
            final = self.path(key)
            if not final.exists():
                os.rename(tmp, final)
            elif _exchange(tmp, final):  # the old entry now sits in tmp
                shutil.rmtree(tmp, ignore_errors=True)
            else:  # no atomic swap here: move the old entry aside, put the new one in, then drop the old
                aside = tmp.with_name(tmp.name + "-old")
                os.rename(final, aside)
                try:
                    os.rename(tmp, final)
                except BaseException:
                    os.rename(aside, final)
                    raise
                shutil.rmtree(aside, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.load(key)  # what a later cache hit returns, to the letter (key order, array dtypes)

    def delete(self, key: str) -> None:
        shutil.rmtree(self.path(key), ignore_errors=True)

    def keys(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def clean_partial(self) -> int:
        """Remove temporary folders left by killed runs, sparing those of a run that holds the entry's lock
        (``engine.file_lock`` on ``.locks/<key>``: it is still writing them); return how many."""
        groups: dict[str, list[Path]] = {}
        for p in self.root.glob(".*.tmp-*") if self.root.exists() else []:
            if p.is_dir():
                groups.setdefault(p.name[1:].split(".tmp-")[0], []).append(p)
        return remove_unless_locked(groups, [self.root / ".locks"])

"""Results store: an experiment's frozen spec hashes to a key; its entry is a folder holding
``spec.json``, ``result.json`` (metrics, histories, provenance) and ``arrays.npz`` (per-example scores).

Entries are written to a temporary folder and renamed into place, so a run killed midway leaves no half
entry. The root is ``$MCMIA_STORE`` or ``data/results`` of the checkout.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .paths import REPO_ROOT

# Bump a component's version when a change alters its numbers: old entries then no longer match.
VERSIONS = {"data": 1, "models": 1, "train": 2, "attacks": 2, "metrics": 1}
# History: train 2 / attacks 2 = scores computed without float64 saturation (loss, confidence, entropies).
TRAINING_COMPONENTS = ("data", "models", "train")


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


def spec_key(spec, components=None) -> str:
    """SHA-256 (first 16 hex digits) of the canonical spec plus the versions of ``components`` (all by
    default; a trained model's key names only the components that produce it)."""
    versions = {k: v for k, v in VERSIONS.items() if components is None or k in components}
    blob = json.dumps({"spec": canonical(spec), "versions": versions}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Entry:
    key: str
    spec: dict
    result: dict
    arrays: dict = field(default_factory=dict)
    path: Path | None = None


def default_root() -> Path:
    return Path(os.environ.get("MCMIA_STORE", REPO_ROOT / "data" / "results"))


class Store:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_root()

    def path(self, key: str) -> Path:
        return self.root / key

    def has(self, key: str) -> bool:
        return (self.path(key) / "result.json").exists()

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
            (tmp / "spec.json").write_text(json.dumps(canonical(spec), indent=1, sort_keys=True))
            (tmp / "result.json").write_text(json.dumps(result, indent=1, sort_keys=True, allow_nan=True))
            buf = io.BytesIO()
            np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
            (tmp / "arrays.npz").write_bytes(buf.getvalue())
            final = self.path(key)
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
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
        """Remove temporary folders left by killed runs; return how many."""
        stale = [p for p in self.root.glob(".*.tmp-*") if p.is_dir()] if self.root.exists() else []
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        return len(stale)

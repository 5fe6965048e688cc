"""One compute-and-store path for every kind of store entry (issue 18).

A kind of entry (a defended target and its attacks, a network of 002, an inversion decoder, a validation
accuracy, ...) is a frozen spec dataclass registered here with its key prefix, the store components that
produce it and a ``compute(spec, device, past_corrupt) -> (result, arrays)`` function. ``run(spec)`` is then
the one way to get an entry: it loads it, or computes it under a per-key lock and stores it with one
provenance record (hardware, wall seconds, finish time, code versions, and a hash of the source of the
components that computed it, which the dry run and ``mcmia list`` compare with today's source). Two processes asking for one spec
produce one entry: the second waits for the lock and loads what the first stored.

``phases(spec)`` names the trained weights an entry needs (``weights.cached_phase`` keys, in training
order): a grid (``grid.py``) orders tasks by them, so a shared phase is trained once.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .data import default_device
from .store import VERSIONS, Entry, Store, spec_key
from .threads import cpu_model


@dataclass(frozen=True)
class Kind:
    prefix: str
    components: tuple
    compute: Callable  # (spec, device: torch.device, past_corrupt: bool) -> (result, arrays)
    phases: Callable  # spec -> list of weights keys the entry trains or loads


_KINDS: dict[type, Kind] = {}
KIND_MODULES = ("runner", "loo", "sparsity", "inversion")  # the modules that register kinds of entries


def kinds() -> dict[type, Kind]:
    """Every kind of entry, by spec type: the modules of ``KIND_MODULES`` are imported first, so what is
    registered never depends on what the caller happened to import."""
    for name in KIND_MODULES:
        importlib.import_module(f"{__package__}.{name}")
    return _KINDS


def register(spec_type: type, prefix: str, components: tuple, compute: Callable, phases: Callable) -> None:
    """Declare a kind of store entry: specs of ``spec_type`` are keyed ``prefix + spec_key(spec, components)``."""
    _KINDS[spec_type] = Kind(prefix, tuple(components), compute, phases)


def kind_of(spec) -> Kind:
    try:
        return kinds()[type(spec)]
    except KeyError:
        known = ", ".join(sorted(t.__name__ for t in _KINDS))
        raise TypeError(f"no kind of store entry is registered for {type(spec).__name__}; known: {known}") from None


def prefixes() -> dict[str, tuple]:
    """Key prefix -> store components of every registered kind, longest prefix first (``""`` matches any key)."""
    return {k.prefix: k.components for k in sorted(kinds().values(), key=lambda k: -len(k.prefix))}


# The source behind each store component (files or folders of the package); with the kind's own module, what an
# entry records the hash of, so that a change of behaviour without a version bump shows (``stale_components``).
COMPONENT_SOURCES = {"data": ("data.py",), "models": ("models",), "train": ("train.py",), "defenses": ("defenses",),
                     "attacks": ("attacks",), "metrics": ("metrics.py",), "sparsity": ("sparsity.py",),
                     "shadow_attack": ("attacks/gonon.py",)}


@functools.lru_cache(maxsize=None)
def _source_hash(*relative: str) -> str:
    root = Path(__file__).parent
    files = sorted(f for r in relative for f in ((root / r).rglob("*.py") if (root / r).is_dir() else [root / r]))
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:12]


def source_hashes(kind: Kind) -> dict[str, str]:
    """A hash of the source of each component that computes entries of ``kind``, and of the kind's own module
    (under ``"kind"``): recorded in every entry's provenance; it moves no key."""
    own = Path(sys.modules[kind.compute.__module__].__file__).relative_to(Path(__file__).parent).as_posix()
    return {**{c: _source_hash(*COMPONENT_SOURCES[c]) for c in kind.components}, "kind": _source_hash(own)}


def stale_components(spec_type_name: str, result: dict) -> list[str] | None:
    """The components (and ``"kind"``) whose source has changed since the entry was computed; None when the
    entry records no source hashes (computed before they were recorded) or its kind is unknown."""
    recorded = result.get("provenance", {}).get("source")
    kind = next((k for t, k in kinds().items() if t.__name__ == spec_type_name), None)
    if recorded is None or kind is None:
        return None
    now = source_hashes(kind)
    return sorted(c for c, h in recorded.items() if now.get(c) != h)


def is_key(text: str) -> bool:
    """Whether ``text`` has the form of a store key: a registered kind's prefix and 16 hex digits."""
    return any(re.fullmatch(re.escape(prefix) + "[0-9a-f]{16}", text) for prefix in prefixes())


def key(spec) -> str:
    kind = kind_of(spec)
    return kind.prefix + spec_key(spec, kind.components)


def phases(spec) -> list[str]:
    return list(kind_of(spec).phases(spec))


def hardware(device=None) -> dict:
    return {"device": str(device or default_device()), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cpu_model": cpu_model(), "cores": os.cpu_count()}


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive lock held while the block runs (``flock`` on ``path``, created if needed): the other
    processes asking for it wait. The lock file stays (it is empty; dot-folders are ignored by git and
    the store)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_stored(spec, store: Store | None = None) -> bool:
    """The entry of ``spec`` is stored and reads back (a damaged entry is not stored: ``Store.intact``)."""
    return (store or Store()).intact(key(spec))


def run(spec, store: Store | None = None, recompute: bool = False, device=None) -> Entry:
    """The stored entry of ``spec``, computed and stored first when absent, on ``device`` (default: CUDA where
    present). ``recompute=True`` replaces an existing (e.g. corrupt) entry and retrains past a weights file
    that does not load."""
    store = store or Store()
    kind, k = kind_of(spec), key(spec)
    if store.has(k) and not recompute:
        return store.load(k)
    with file_lock(store.root / ".locks" / k):
        if store.has(k) and not recompute:  # another process stored it while we waited
            return store.load(k)
        device = torch.device(device or default_device())
        t0 = time.perf_counter()
        result, arrays = kind.compute(spec, device, recompute)
        result["provenance"] = {**result.get("provenance", {}), "seconds": time.perf_counter() - t0,
                                "hardware": hardware(device), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                                "code_versions": {c: VERSIONS[c] for c in kind.components},
                                "source": source_hashes(kind)}
        return store.save(k, spec, result, arrays)

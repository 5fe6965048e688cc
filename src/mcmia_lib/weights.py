"""Trained weights on disk: where they live (``$MCMIA_WEIGHTS`` or data/weights), each training phase cached
once under its key (``cached_phase``: two processes training one phase share it), and the sweep of the temporary
files a killed write left. Every kind of entry that trains a model (targets, 002's networks, inversion decoders,
leave-one-out models) uses these; none of them needs the target kind (``runner``) to reach them."""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import torch

from . import engine
from .paths import atomic_write_bytes, remove_unless_locked, weights_root
from .store import Store


def weights_path(key: str) -> Path:
    return weights_root() / f"{key}.pt"


def clean_partial_weights(store: Store | None = None) -> tuple[int, Path]:
    """Remove the temporary files of weight and checkpoint writes cut by a kill (``.<key>.pt.<random>.tmp``,
    ``.<key>.ckpt.<random>.tmp``), sparing those of a run that holds the lock of their key: a training phase's
    (``.locks/`` of the weights folder, ``cached_phase``) or a store entry's (``.locks/`` of ``store``: the
    checkpoints of ``loo`` and ``inversion``). Return how many were removed and the weights folder."""
    folder = weights_path("x").parent
    groups: dict[str, list[Path]] = {}
    for f in folder.glob(".*.tmp") if folder.exists() else []:
        if f.is_file():
            groups.setdefault(f.name[1:].split(".")[0], []).append(f)
    return remove_unless_locked(groups, [folder / ".locks", (store or Store()).root / ".locks"]), folder


class CorruptWeightsError(RuntimeError):
    """A stored weights file does not load; the message names it and the fix."""


def _first_words(exc: Exception, limit: int = 80) -> str:
    """The first line of ``exc``'s message, cut at a word boundary to about ``limit`` characters with "…"."""
    line = next((t.strip() for t in str(exc).splitlines() if t.strip()), type(exc).__name__)
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0] if " " in line[:limit] else line[:limit]
    return cut.rstrip(" ,.;:") + "…"


def cached_phase(key: str, model, device, fit, phase: str, past_corrupt: bool = False) -> tuple[list, float]:
    """Run ``fit(checkpoint_path) -> history`` once and cache the weights under ``key``; later calls load
    them. Each history record is tagged with ``phase``. A weights file that does not load is an error naming
    it, or, with ``past_corrupt`` (``run(..., recompute=True)``), retrained. Two processes training one phase
    at once: the second waits for the first and loads its weights."""
    path = weights_path(key)
    with engine.file_lock(path.parent / ".locks" / key):
        return _cached_phase(path, model, device, fit, phase, past_corrupt)


def _cached_phase(path: Path, model, device, fit, phase: str, past_corrupt: bool) -> tuple[list, float]:
    if path.exists():
        try:
            state = torch.load(path, weights_only=True, map_location=device)
            model.load_state_dict(state["model"])
            return [{**h, "phase": phase} for h in state["history"]], state["seconds"]
        except Exception as exc:
            if not past_corrupt:
                raise CorruptWeightsError(
                    f"weights file {path} does not load ({type(exc).__name__}: {_first_words(exc)}); delete it "
                    f"(rm {path}) and run again: it is retrained (in Python: run(spec, recompute=True))") from exc
            print(f"mcmia: weights file {path} does not load; retraining it", file=sys.stderr)
    t0 = time.perf_counter()
    ckpt = path.with_suffix(".ckpt")
    history = [{**h, "phase": phase} for h in fit(ckpt)]
    seconds = time.perf_counter() - t0
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "history": history, "seconds": seconds}, buf)
    atomic_write_bytes(path, buf.getvalue())
    ckpt.unlink(missing_ok=True)
    return history, seconds

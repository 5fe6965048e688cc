"""Paper-vs-ours tables (pandas), reference values from ``data/reference/``, and glue helpers.

Every number a chapter prints comes from a stored result or a reference file, never typed by hand.
"""
from __future__ import annotations

import json
import numpy as np
import pandas as pd
import yaml

from .metrics import mean_std
from .paths import REPO_ROOT

REFERENCE_DIR = REPO_ROOT / "data" / "reference"
PAPER_FILES = {"000": "000_9e578854f912c572.txt", "001": "001_b208a0acef829e4a.txt",
               "002": "002_db679f49b52551a9.txt", "004": "004_6873c2a771daf7e3.txt"}
ATTACK_NAMES = {"nn": "NN attack (000/001)", "loss": "loss threshold", "confidence": "confidence threshold",
                "entropy": "entropy threshold", "modified_entropy": "modified entropy (Song & Mittal)"}


def load_reference(name: str = "mcmia") -> list[dict]:
    return yaml.safe_load((REFERENCE_DIR / f"{name}.yaml").read_text())


def reference(row: str, column: str, table: str | None = None, name: str = "mcmia") -> dict:
    """The one reference record matching ``row`` and ``column`` (and ``table`` if given)."""
    hits = [r for r in load_reference(name) if r["row"] == row and r["column"] == column
            and (table is None or r["table"] == table)]
    if len(hits) != 1:
        raise KeyError(f"{len(hits)} reference records for row={row!r} column={column!r} table={table!r} in {name}.yaml")
    return hits[0]


def source(rec: dict) -> str:
    return f"{rec['paper']} Table {rec['table']}" if not rec["table"].startswith(("App", "Sec")) \
        else f"{rec['paper']} {rec['table']}"


def fmt(values, digits: int = 2, scale: float = 100.0) -> str:
    """'mean ± std' of ``values`` × ``scale`` over seeds (std with ddof=1), or the single value."""
    m, s = mean_std(np.asarray(values, dtype=float) * scale)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"


def paper_vs_ours(rows: list[tuple[str, dict, list]], scale: float = 100.0) -> pd.DataFrame:
    """One row per quantity: the paper's value and source, ours as mean ± std over seeds (n), and the gap
    ours − paper in the paper's unit. ``rows`` = [(quantity, reference record, [per-seed values])]."""
    out = []
    for quantity, rec, values in rows:
        m, _ = mean_std(np.asarray(values, dtype=float) * scale)
        out.append({"quantity": quantity, "paper": rec["value"], "source": source(rec),
                    "ours (mean ± std)": fmt(values, scale=scale), "seeds": len(values),
                    "gap (ours − paper)": round(m - float(rec["value"]), 2)})
    return pd.DataFrame(out).set_index("quantity")


def attack_table(entries, attacks=None) -> pd.DataFrame:
    """Per attack, mean ± std over seeds of accuracy, AUC, advantage and TPR at 1% / 0.1% FPR (in %)."""
    attacks = attacks or list(entries[0].result["attacks"])
    cols = {"accuracy": "attack accuracy", "auc": "AUC", "advantage": "advantage",
            "tpr@0.01": "TPR @ 1% FPR", "tpr@0.001": "TPR @ 0.1% FPR"}
    rows = []
    for a in attacks:
        row = {"attack": ATTACK_NAMES.get(a, a)}
        for k, label in cols.items():
            vals = [e.result["attacks"][a][k] for e in entries]
            row[label] = "n/a (set too small)" if np.isnan(vals).any() else fmt(vals)
        rows.append(row)
    return pd.DataFrame(rows).set_index("attack")


def compute_seconds(entries) -> float:
    """Training plus attack time recorded in the stored results (not this notebook's wall time); a target
    shared by entries that differ only in their NN attack is counted once."""
    trainings = {json.dumps({k: v for k, v in e.spec.items() if k != "nn_attack"}, sort_keys=True):
                 e.result["provenance"]["seconds_train"] for e in entries}
    return float(sum(trainings.values()) + sum(e.result["provenance"]["seconds_attacks"] for e in entries))


def provenance_table(entries) -> pd.DataFrame:
    hw = [e.result["provenance"]["hardware"] for e in entries]
    values = lambda k: ", ".join(sorted({str(h[k]) for h in hw}))  # noqa: E731
    return pd.DataFrame([{"store entries": len(entries), "device": values("device"), "torch": values("torch"),
                          "cores": values("cores"), "torch threads": values("threads"),
                          "compute (min)": round(compute_seconds(entries) / 60, 1),
                          "last finished": max(e.result["provenance"]["finished"] for e in entries)}])


def settings_table(ours: dict, paper: dict) -> pd.DataFrame:
    """Side-by-side parameters of this execution and of the ``paper`` profile, flagging differences."""
    keys = [k for k in paper if k != "profile"]
    return pd.DataFrame([{"parameter": k, "this run": ours.get(k), "paper profile": paper[k],
                          "differs": "yes" if ours.get(k) != paper[k] else ""} for k in keys]).set_index("parameter")


def profile_params(notebook: str, profile: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "params" / notebook / f"{profile}.yaml").read_text())


def glue(name: str, value, display: bool = False) -> None:
    """Record ``value`` for ``{glue:text}`name``` in the chapter's prose (myst-nb)."""
    from myst_nb import glue as _glue
    _glue(name, value.item() if isinstance(value, np.generic) else value, display=display)

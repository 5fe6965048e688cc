"""Paper-vs-ours tables (pandas), reference values from ``data/reference/``, and glue helpers.

Every number a chapter prints comes from a stored result or a reference file, never typed by hand.
"""
from __future__ import annotations

import json
import numpy as np
import pandas as pd
import yaml

from . import metrics
from .metrics import mean_std
from .paths import REPO_ROOT

REFERENCE_DIR = REPO_ROOT / "data" / "reference"
BENCHMARK_DIR = REPO_ROOT / "data" / "benchmarks"
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


def load_benchmark(name: str) -> dict:
    """A benchmark run saved by ``benchmarks/<name>.py --save data/benchmarks/<name>.json``."""
    path = BENCHMARK_DIR / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no saved benchmark {path}: run `python benchmarks/{name}.py --save {path}` "
                                "from the repository root first")
    return json.loads(path.read_text())


DP_OVERHEAD_GOAL = 3.0  # issue 5: DP-SGD training at most 3x the non-private time


def lomurno_dp_slowdown(epsilons=(2, 4, 8)) -> tuple[float, float]:
    """004 Table 2: the lowest and highest DP-SGD / baseline training-time ratio over its datasets and ε."""
    ratios = [reference(row, f"DP eps={e:g} training seconds", name="lomurno")["value"]
              / reference(row, "Baseline training seconds", name="lomurno")["value"]
              for row in ("MNIST", "F-MNIST", "CIFAR-10") for e in epsilons]
    return min(ratios), max(ratios)


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


def _phase_identity(spec: dict, phase: str) -> str:
    """What a training phase depends on: pretraining of a pruned model is the undefended target's
    training, and its ADMM phase is shared with the Pruning & Min-Max variant."""
    drop = {"nn_attack"} | ({"pruning", "minmax"} if phase == "train" and spec.get("pruning") else set()) \
        | ({"minmax"} if phase == "admm" else set())
    return json.dumps([phase, {k: v for k, v in spec.items() if k not in drop}], sort_keys=True)


def compute_seconds(entries) -> float:
    """Training plus attack time recorded in the stored results (not this notebook's wall time). Training
    time is the sum of epoch times per phase, and a phase shared by several entries (the same target
    attacked twice, a pruned model's pretraining = the baseline) is counted once."""
    phases = {}
    for e in entries:
        for h in e.result["history"]:
            ident = _phase_identity(e.spec, h.get("phase", "train"))
            phases.setdefault(ident, {})[h["epoch"]] = h["seconds"]
    return float(sum(sum(p.values()) for p in phases.values())
                 + sum(e.result["provenance"]["seconds_attacks"] for e in entries))


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


def defense_verdict(baseline: list, defended: list, paper_baseline: float, paper_defended: float,
                    defended_test_acc: list | None = None, num_classes: int | None = None,
                    baseline_name: str = "the undefended target",
                    defended_name: str = "the defended model") -> tuple[str, str]:
    """(verdict, reason) for the claim "the defense lowers the attack accuracy from ``paper_baseline`` to
    ``paper_defended``" (percent), from our per-seed attack accuracies (fractions). Not testable when our
    undefended target's attack is within 1 point of chance, unless the defended model leaks significantly more
    (Welch t-test, p < 0.05, by at least 1 point): reversed; reproduced when our reduction is significant
    (Welch t-test, p < 0.05) and at least half the paper's; partly when significant but smaller; undecided
    with a single seed on either side (no test of seed-to-seed variation is possible). With the defended
    model's test accuracies (fractions) and ``num_classes``: collapsed when that accuracy is below 1.5× chance,
    since a model that has stopped predicting leaks nothing and defends nothing. ``baseline_name`` names the
    compared model in the reasons (e.g. "the DP-SGD target" when the claim is "leaks less than DP"),
    ``defended_name`` the defended one."""
    from scipy.stats import ttest_ind
    b, d = 100 * np.asarray(baseline, dtype=float), 100 * np.asarray(defended, dtype=float)
    ours, theirs = b.mean() - d.mean(), paper_baseline - paper_defended
    said = (f"attack accuracy {b.mean():.2f}% → {d.mean():.2f}% here ({d.mean() - b.mean():+.2f} points), "
            f"{paper_baseline:.2f}% → {paper_defended:.2f}% in the paper ({paper_defended - paper_baseline:+.2f})")
    if defended_test_acc is not None and np.mean(defended_test_acc) < 1.5 / num_classes:
        return "collapsed", (f"{defended_name}'s test accuracy {100 * np.mean(defended_test_acc):.2f}% is at "
                             f"chance ({100 / num_classes:.0f}%); {said}")
    if len(b) > 1 and len(d) > 1 and ours <= -1 and ttest_ind(b, d, equal_var=False).pvalue < 0.05:
        return "reversed", f"{defended_name} leaks significantly more than {baseline_name}; {said}"
    if b.mean() - 50 < 1:
        return "not testable here", f"{baseline_name} does not leak (attack {b.mean():.2f}%, chance 50%); {said}"
    if len(b) < 2 or len(d) < 2:
        return "undecided (one seed)", f"a single seed cannot separate the effect from seed noise; {said}"
    significant = ours > 0 and ttest_ind(b, d, equal_var=False).pvalue < 0.05
    if significant and ours >= theirs / 2:
        return "reproduced", said
    if significant:
        return "partly", f"a smaller reduction than printed; {said}"
    return "not reproduced", f"no significant reduction; {said}"


def ratio_verdict(loss, gain, paper_ratio: float, runs: int) -> tuple[str, float, float, float]:
    """(verdict, slope, low, high) for 002's claim "a relative accuracy loss of p% buys a relative defense gain
    of about ``paper_ratio``·p%", from per-run relative losses and gains (fractions, vs the dense networks).
    The slope through the origin and its 95% interval come from ``metrics.slope_through_origin``. Not
    reproduced when the networks do not gain defense on average (a positive slope from runs that gain accuracy
    and lose defense is the opposite of the claim); reproduced when the interval holds the paper's ratio
    and excludes 0; undecided when it holds both; partly when it excludes both but is positive; undecided
    with a single run."""
    b, lo, hi = metrics.slope_through_origin(loss, gain)
    mean_gain = float(np.mean(gain))
    if runs < 2:
        verdict = "undecided (one run)"
    elif mean_gain <= 0:
        verdict = f"not reproduced (the networks lose defense: {100 * mean_gain:+.1f}% on average)"
    elif lo <= paper_ratio <= hi:
        verdict = "reproduced" if lo > 0 else f"undecided (the interval holds both 0 and {paper_ratio:g})"
    elif lo > 0:
        verdict = f"partly (a positive trade-off, but not {paper_ratio:g})"
    else:
        verdict = "not reproduced"
    return verdict, b, lo, hi


def show_whole(df: pd.DataFrame) -> None:
    """Display ``df`` without cutting its long text cells (a verdict's reason) to pandas' 50 characters."""
    from IPython.display import display
    with pd.option_context("display.max_colwidth", None):
        display(df)


def admm_table(entries_by_label: dict) -> pd.DataFrame:
    """Did ADMM converge before the hard prune? Per pruned method: ρ over the ADMM phase, the relative
    residual ‖W − Z‖²/‖W‖² after its first and last epoch (it should shrink towards 0, 001 App. B), and the
    training accuracy (running mean) in the first and last retraining epoch: a low first value means the
    hard prune removed weights the network still used. Mean ± std over seeds."""
    phase = lambda e, name: [h for h in e.result["history"] if h.get("phase") == name]  # noqa: E731
    rows = []
    for label, entries in entries_by_label.items():
        admm, retrain = [phase(e, "admm") for e in entries], [phase(e, "retrain") for e in entries]
        if not all(admm) or not all(retrain):
            raise ValueError(f"{label}: entries without ADMM and retraining phases are not pruned models")
        rows.append({"method": label, "ρ (first → last ADMM epoch)": f"{admm[0][0]['admm_rho']:.2g} → {admm[0][-1]['admm_rho']:.2g}",
                     "residual, first ADMM epoch": fmt([a[0]["admm_residual"] for a in admm], 3, 1.0),
                     "residual, last ADMM epoch": fmt([a[-1]["admm_residual"] for a in admm], 3, 1.0),
                     "train acc., first retraining epoch (%)": fmt([r[0]["train_acc"] for r in retrain]),
                     "train acc., last retraining epoch (%)": fmt([r[-1]["train_acc"] for r in retrain])})
    return pd.DataFrame(rows).set_index("method")


def per_class_gap(entries_by_label: dict) -> pd.DataFrame:
    """One row per method, seed and class of the evaluation set: the accuracy gap between its members and
    non-members and the NN attack's accuracy on that class (000 Figure 5), in percent."""
    rows = []
    for label, entries in entries_by_label.items():
        for e in entries:
            a = e.arrays
            if "eval_pred" not in a:
                raise KeyError(f"entry {e.key} has no per-example predictions (eval_pred); re-run it with this version")
            member, correct = a["eval_member"] == 1, a["eval_pred"] == a["eval_label"]
            decided = a["score_nn"] >= 0.5
            for c in np.unique(a["eval_label"]):
                k = a["eval_label"] == c
                rows.append({"method": label, "seed": e.spec["seed"], "class": int(c),
                             "train-test accuracy gap (%)": 100 * (correct[k & member].mean() - correct[k & ~member].mean()),
                             "NN attack accuracy (%)": 100 * np.mean(decided[k] == member[k])})
    return pd.DataFrame(rows)


def js_table(entries_by_label: dict) -> pd.DataFrame:
    """001's gain analysis (Eq. 10: at the optimal inference model G = −log 4 + 2·JS(P_D ‖ P_D')) per
    method, on the evaluation set: the trained NN attack's gain G, the JS lower bound (G + log 4)/2 it
    implies, and a direct binned JS estimate between the members' and non-members' loss scores (nats;
    log 2 ≈ 0.693 is total separation) on n members vs n non-members, next to the same estimate between
    two disjoint sets of n non-members: the floor of the estimator at that sample size."""
    rows = []
    for label, entries in entries_by_label.items():
        gain, js_loss, null = [], [], []
        for e in entries:
            m = e.arrays["eval_member"]
            gain.append(metrics.inference_gain(m, e.arrays["score_nn"]))
            s_in, s_out = e.arrays["score_loss"][m == 1], e.arrays["score_loss"][m == 0]
            n = min(len(s_in), len(s_out)) // 2
            js_loss.append(metrics.js_divergence(s_in[:n], s_out[:n]))
            null.append(metrics.js_divergence(s_out[:n], s_out[n:2 * n]))
        rows.append({"method": label, "NN attack gain G": fmt(gain, 4, 1.0),
                     "JS lower bound (G + log 4)/2": fmt([metrics.js_lower_bound(g) for g in gain], 4, 1.0),
                     "binned JS of loss scores": fmt(js_loss, 4, 1.0),
                     "binned JS, non-members vs non-members": fmt(null, 4, 1.0),
                     "NN attack accuracy (%)": fmt([e.result["attacks"]["nn"]["accuracy"] for e in entries])})
    return pd.DataFrame(rows).set_index("method")


def reference_table(tables, ours: dict, rows=None, digits: int = 2, missing: str = "not run here",
                    name: str = "mcmia") -> pd.DataFrame:
    """Every printed cell of ``tables`` (pairs (paper, table), e.g. ("000", "II"), ("001", "1")) whose row is
    in ``rows`` (default all), with the other copy's value where 000 and 001 differ, and ours beside it:
    ``ours[(row, column)]`` = per-seed values in the paper's unit; other cells show ``missing``. ``name``:
    the reference file (``data/reference/<name>.yaml``)."""
    cells: dict = {}
    for r in load_reference(name):
        if (r["paper"], r["table"]) in set(tables) and (rows is None or r["row"] in rows):
            cells.setdefault((r["row"], r["column"]), []).append(r)
    out = []
    for (row, column), recs in cells.items():
        values = ours.get((row, column))
        out.append({"row": row, "quantity": column, "paper": recs[0]["value"], "source": source(recs[0]),
                    "other copy": "; ".join(f"{r['value']} ({source(r)})" for r in recs[1:]),
                    "ours (mean ± std)": fmt(values, digits, 1.0) if values else missing,
                    "seeds": len(values) if values else ""})
    return pd.DataFrame(out).set_index(["row", "quantity"])

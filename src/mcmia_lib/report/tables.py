"""Tables a chapter shows (pandas): paper beside ours, attacks, provenance and compute, settings, and the
per-paper tables (ADMM residuals, per-class gaps, JS divergence, Algorithm 1)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import metrics
from ..metrics import mean_std
from .references import load_reference, source


ATTACK_NAMES = {"nn": "NN attack (000/001)", "loss": "loss / confidence threshold", "confidence": "confidence threshold",
                "entropy": "entropy threshold", "modified_entropy": "modified entropy (Song & Mittal)"}


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


def merged_attacks(attacks) -> list[str]:
    """``attacks`` without ``confidence`` when ``loss`` is there: the true-class confidence exp(−loss) ranks
    examples exactly as the loss does, so both give the same ROC, threshold and numbers (one row)."""
    attacks = list(attacks)
    return [a for a in attacks if not (a == "confidence" and "loss" in attacks)]


def attack_table(entries, attacks=None) -> pd.DataFrame:
    """Per attack, mean ± std over seeds of accuracy, AUC, advantage and TPR at 1% / 0.1% FPR (in %); the loss
    and confidence attacks are one row (``merged_attacks``)."""
    attacks = merged_attacks(attacks or list(entries[0].result["attacks"]))
    cols = {"accuracy": "attack accuracy", "auc": "AUC", "advantage": "advantage",
            "tpr@0.01": "TPR @ 1% FPR", "tpr@0.001": "TPR @ 0.1% FPR"}
    rows = []
    for a in attacks:
        row = {"attack": ATTACK_NAMES.get(a, a)}
        for k, label in cols.items():
            vals = [e.attack(a)[k] for e in entries]
            row[label] = "n/a (set too small)" if np.isnan(vals).any() else fmt(vals)
        rows.append(row)
    return pd.DataFrame(rows).set_index("attack")


def compute_seconds(entries) -> float:
    """Training plus attack time recorded in the stored results (not this notebook's wall time), each entry
    counted once. Training time is the sum of epoch times per phase; a phase shared by several entries (the same
    target attacked twice, a pruned model's pretraining = the baseline: the same weights key, ``Entry.phases``,
    which the kind of entry declares) is counted once, at the smallest time an
    entry records for it (an entry computed where the phase's weights were not cached records its own training
    of it), so the total does not depend on the order of ``entries``. An entry without a training history (an
    inversion decoder's history holds no epoch times; a validation accuracy) counts the wall time it recorded."""
    unique = list({e.key: e for e in entries}.values())
    phases: dict[str, float] = {}
    other = 0.0
    for e in unique:
        if not _trains(e):
            other += e.seconds
            continue
        names = list(dict.fromkeys(h.get("phase", "train") for h in e.history))  # in training order
        keys = e.phases if len(e.phases) == len(names) else [f"{e.key}/{n}" for n in names]  # not shared
        identity = dict(zip(names, keys))
        own: dict[str, dict] = {}
        for h in e.history:
            own.setdefault(identity[h.get("phase", "train")], {})[h["epoch"]] = h["seconds"]
        for ident, epochs in own.items():
            phases[ident] = min(phases.get(ident, float("inf")), sum(epochs.values()))
    return float(sum(phases.values()) + other
                 + sum(e.result["provenance"].get("seconds_attacks", 0.0) for e in unique if _trains(e)))


def _trains(entry) -> bool:
    """Whether an entry records its training per epoch (a history with epoch times)."""
    history = entry.result.get("history")
    return bool(history) and "seconds" in history[0]


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


def late_dips(entries_by_label: dict, drop: float = 20.0) -> pd.DataFrame:
    """Runs whose per-epoch test accuracy (curve subset) fell more than ``drop`` points below their best so
    far in the second half of training: one row per run, at its deepest such dip, with its final accuracy
    (a fixed epoch budget keeps such a dip in the reported numbers). ``entries_by_label`` = {label: entries}."""
    rows = []
    for label, entries in entries_by_label.items():
        for e in entries:
            acc = 100 * np.array([h["test_acc"] for h in e.history])
            best = np.maximum.accumulate(acc)
            fall = best - acc
            late = np.arange(len(acc)) >= len(acc) // 2
            if late.any() and fall[late].max() > drop:
                i = int(np.flatnonzero(late)[fall[late].argmax()])
                rows.append({"run": label, "seed": e.spec["seed"], "epoch": i + 1,
                             "test accuracy then (%)": acc[i], "best before (%)": best[i],
                             "final test accuracy (%)": 100 * e.test_acc})
    return pd.DataFrame(rows, columns=["run", "seed", "epoch", "test accuracy then (%)", "best before (%)",
                                       "final test accuracy (%)"])


def admm_table(entries_by_label: dict) -> pd.DataFrame:
    """Did ADMM converge before the hard prune? Per pruned method: ρ over the ADMM phase, the relative
    residual ‖W − Z‖²/‖W‖² after its first and last epoch (it should shrink towards 0, 001 App. B), and the
    training accuracy (running mean) in the first and last retraining epoch: a low first value means the
    hard prune removed weights the network still used. Mean ± std over seeds."""
    phase = lambda e, name: [h for h in e.history if h.get("phase") == name]  # noqa: E731
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


def js_table(entries_by_label: dict, n_perm: int = 200) -> pd.DataFrame:
    """001's gain analysis (Eq. 10: at the optimal inference model G = −log 4 + 2·JS(P_D ‖ P_D')) per
    method, on the evaluation set: the trained NN attack's gain G, the JS lower bound (G + log 4)/2 it
    implies, and a direct binned JS estimate between the members' and non-members' loss scores (nats;
    log 2 ≈ 0.693 is total separation) beside a permutation null (``metrics.js_permutation_test``: the same
    estimate between random splits of the pooled scores, its 95th percentile and the p-value per seed)."""
    rows = []
    for label, entries in entries_by_label.items():
        gain, tests = [], []
        for e in entries:
            m = e.arrays["eval_member"]
            gain.append(metrics.inference_gain(m, e.arrays["score_nn"]))
            s = e.arrays["score_loss"]
            tests.append(metrics.js_permutation_test(s[m == 1], s[m == 0], n_perm, seed=e.spec["seed"]))
        rows.append({"method": label, "NN attack gain G": fmt(gain, 4, 1.0),
                     "JS lower bound (G + log 4)/2": fmt([metrics.js_lower_bound(g) for g in gain], 4, 1.0),
                     "binned JS of loss scores": fmt([t["js"] for t in tests], 4, 1.0),
                     "permutation null, 95th percentile": fmt([t["null_95"] for t in tests], 4, 1.0),
                     "permutation p-value (per seed)": ", ".join(f"{t['p_value']:.3f}" for t in tests),
                     "NN attack accuracy (%)": fmt([e.attack("nn")["accuracy"] for e in entries])})
    return pd.DataFrame(rows).set_index("method")


def algorithm1(sweep, candidates, seed: int = 0) -> tuple[pd.DataFrame, int, int]:
    """001's Algorithm 1 on stored MCMIA-Pruning entries, one per candidate vector of rates: keep the candidate
    whose NN attack has the smallest gain G. The evaluation set is split once into a selection half and a
    report half (``metrics.stratified_halves``, the same for every candidate): the choice uses the selection
    half's gain, every reported number the other half. Returns the table, the chosen row and the *oracle*
    row (the candidate with the smallest gain on the report half itself)."""
    member = sweep[0].arrays["eval_member"]
    if any(not np.array_equal(e.arrays["eval_member"], member) for e in sweep):
        raise ValueError("Algorithm 1 compares candidates on one evaluation set: the entries' splits differ")
    select, rep = metrics.stratified_halves(member == 1, seed)
    rows = []
    for r, e in zip(candidates, sweep):
        sp = e.result["sparsity"]
        score = e.arrays["score_nn"]
        rows.append({"rates": str(list(r)), "weights kept": sum(layer["nonzero"] for layer in sp),
                     "compression (×)": sum(layer["weights"] for layer in sp) / sum(layer["nonzero"] for layer in sp),
                     "test accuracy (%)": 100 * e.test_acc,
                     "gain G, selection half": metrics.inference_gain(member[select] == 1, score[select]),
                     "gain G, report half": metrics.inference_gain(member[rep] == 1, score[rep]),
                     "NN attack accuracy, report half (%)": 100 * metrics.attack_accuracy(member[rep] == 1,
                                                                                          score[rep] >= 0.5),
                     "NN attack collapsed": e.attack("nn")["collapsed"]})
    table = pd.DataFrame(rows)
    chosen = int(table["gain G, selection half"].to_numpy().argmin())
    oracle = int(table["gain G, report half"].to_numpy().argmin())
    table["choice"] = ["← chosen (selection half)" if i == chosen else "" for i in range(len(table))]
    table.loc[oracle, "choice"] += ("; " if oracle == chosen else "") + "oracle (report half)"
    return table, chosen, oracle


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

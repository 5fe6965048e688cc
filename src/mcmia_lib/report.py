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
ATTACK_NAMES = {"nn": "NN attack (000/001)", "loss": "loss / confidence threshold", "confidence": "confidence threshold",
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


def compression_reference(model: str, ratio: float) -> dict:
    """The printed compression ratio of ``model`` on CIFAR (000 Table V or 001 Table 4) that equals
    ``ratio``: which paper a profile's target follows, where the two copies differ (VGG16)."""
    names = {"vgg16": "CIFAR-VGG16", "mobilenetv2": "CIFAR-MobileNetV2", "resnet18": "CIFAR-ResNet-18"}
    hits = [r for r in load_reference() if r["row"] == names.get(model) and r["column"] == "reduction ratio"
            and abs(r["value"] - ratio) < 1e-9]
    if not hits:
        raise KeyError(f"no printed compression ratio {ratio} for {model} in 000 Table V / 001 Table 4")
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
    """Training plus attack time recorded in the stored results (not this notebook's wall time), each entry
    counted once. Training time is the sum of epoch times per phase; a phase shared by several entries (the same
    target attacked twice, a pruned model's pretraining = the baseline) is counted once, at the smallest time an
    entry records for it (an entry computed where the phase's weights were not cached records its own training
    of it), so the total does not depend on the order of ``entries``. An entry without a training history (an
    inversion decoder's history holds no epoch times; a validation accuracy) counts the wall time it recorded."""
    unique = list({e.key: e for e in entries}.values())
    phases: dict[str, float] = {}
    other = 0.0
    for e in unique:
        if not _trains(e):
            other += e.result["provenance"]["seconds"]
            continue
        own: dict[str, dict] = {}
        for h in e.result["history"]:
            own.setdefault(_phase_identity(e.spec, h.get("phase", "train")), {})[h["epoch"]] = h["seconds"]
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


def profile_params(notebook: str, profile: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "params" / notebook / f"{profile}.yaml").read_text())


def glue(name: str, value, display: bool = False) -> None:
    """Record ``value`` for ``{glue:text}`name``` in the chapter's prose (myst-nb)."""
    from myst_nb import glue as _glue
    _glue(name, value.item() if isinstance(value, np.generic) else value, display=display)


# How a claim is decided (DESIGN.md, "How a claim is decided"; the methods page states the rule).
VERDICTS = ("consistent", "smaller effect", "no effect", "contradicted", "inconclusive", "not testable",
            "collapsed", "no verdict")


def paired_interval(diffs, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of the paired per-seed differences and its two-sided ``level`` t-interval; (mean, −inf, inf) with
    one seed, since one seed says nothing about seed-to-seed spread."""
    from scipy.stats import t as student
    d = np.asarray(diffs, dtype=float)
    if d.size == 0 or not np.all(np.isfinite(d)):
        raise ValueError(f"paired differences must be finite and non-empty, got {d.tolist()}")
    m = float(d.mean())
    if d.size < 2:
        return m, -np.inf, np.inf
    half = student.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    return m, m - half, m + half


def p_value(diffs) -> float:
    """Two-sided one-sample t-test p-value of mean difference 0 (1 with fewer than two seeds or no spread
    and mean 0; 0 with no spread and a non-zero mean)."""
    from scipy.stats import ttest_1samp
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return 1.0
    if d.std(ddof=1) == 0:
        return 1.0 if d.mean() == 0 else 0.0
    return float(ttest_1samp(d, 0.0).pvalue)


def holm_levels(pvalues, alpha: float = 0.05) -> list[float]:
    """Holm's step-down levels for a family of claims: the claim with the k-th smallest p-value (k = 0, 1, ...)
    of m gets a 1 − α/(m − k) interval, so the family's error rate stays at α."""
    order = np.argsort(np.asarray(pvalues, dtype=float), kind="stable")
    levels = np.empty(len(order))
    for k, i in enumerate(order):
        levels[i] = 1 - alpha / (len(order) - k)
    return levels.tolist()


def directional_verdict(lo: float, hi: float, paper_effect: float) -> str:
    """Verdict on "the effect is ``paper_effect`` (> 0, claimed direction positive)" from our interval."""
    if not paper_effect > 0:
        raise ValueError(f"orient the claim so that the paper's effect is positive, got {paper_effect}")
    if hi < 0:
        return "contradicted"
    if lo > 0:
        return "consistent" if hi >= paper_effect / 2 else "smaller effect"
    return "no effect" if hi < paper_effect / 2 else "inconclusive"


def equivalence_verdict(lo: float, hi: float, margin: float) -> str:
    """Verdict on "the two are about equal": consistent when the interval lies within ±``margin``,
    contradicted when it lies wholly outside it, inconclusive otherwise."""
    if -margin < lo and hi < margin:
        return "consistent"
    if lo > margin or hi < -margin:
        return "contradicted"
    return "inconclusive"


def seeds_needed(diffs, paper_effect: float, level: float, cap: int = 10_000) -> int | None:
    """Seeds at which an interval with the observed mean and spread would exclude 0 or half the paper's
    effect (what an inconclusive claim needs); None with fewer than two seeds."""
    from scipy.stats import t as student
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return None
    m, sd = d.mean(), d.std(ddof=1)
    target = max(abs(m), abs(paper_effect / 2 - m))
    if sd == 0:
        return int(d.size)
    for n in range(2, cap + 1):
        if student.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n) < target:
            return n
    return cap


def _fmt_interval(lo: float, hi: float) -> str:
    return "n/a (one seed)" if not np.isfinite(lo) else f"[{lo:.2f}, {hi:.2f}]"


def claim_table(claims: list[dict], alpha: float = 0.05) -> pd.DataFrame:
    """Decide one chapter's claims. Each claim is a dict with ``claim`` (text), ``paper`` (the paper's effect,
    oriented positive), ``unit``, and either ``diffs`` (our paired per-seed differences, same orientation) or
    ``samples`` (bootstrap draws of our effect); optional: ``kind`` "equivalence" with ``margin``, ``collapsed``
    / ``not_testable`` (the reason, when the defended model predicts at chance / the reference model does not
    leak), ``fixed`` (verdict, reason) for a claim no interval decides, ``link``.

    The testable claims get Holm levels (``holm_levels``); a claim's verdict comes from its interval at its
    level (``directional_verdict`` / ``equivalence_verdict``), on unrounded values. Collapsed comes first; a
    contradicted claim stays contradicted when its reference does not leak (the defense made things worse);
    otherwise not testable replaces the interval's verdict. Numeric columns stay numeric; ``display_claims``
    formats them."""
    def pval(c):
        if "samples" in c:
            x = np.asarray(c["samples"], dtype=float)
            return float(min(1.0, 2 * min((x <= 0).mean(), (x >= 0).mean())))
        return p_value(c["diffs"])
    decided = [i for i, c in enumerate(claims) if "fixed" not in c]
    levels = dict(zip(decided, holm_levels([pval(claims[i]) for i in decided], alpha)))
    rows = []
    for i, c in enumerate(claims):
        row = {"claim": c["claim"], "paper": c.get("paper", np.nan), "unit": c.get("unit", ""),
               "ours": np.nan, "low": np.nan, "high": np.nan, "level": np.nan, "seeds": np.nan, "note": ""}
        if "fixed" in c:
            row["verdict"], row["note"] = c["fixed"]
            row["ours"] = c.get("ours", np.nan)
        else:
            level = levels[i]
            if "samples" in c:
                x = np.asarray(c["samples"], dtype=float)
                m, lo, hi = float(c.get("ours", np.mean(x))), *np.quantile(x, [(1 - level) / 2, (1 + level) / 2])
                n = c.get("seeds", np.nan)
            else:
                m, lo, hi = paired_interval(c["diffs"], level)
                n = len(c["diffs"])
            verdict = (equivalence_verdict(lo, hi, c["margin"]) if c.get("kind") == "equivalence"
                       else directional_verdict(lo, hi, c["paper"]))
            note = ""
            if c.get("collapsed"):
                verdict, note = "collapsed", c["collapsed"]
            elif c.get("not_testable") and verdict != "contradicted":
                verdict, note = "not testable", c["not_testable"]
            elif verdict == "inconclusive" and "diffs" in c:
                need = seeds_needed(c["diffs"], c["paper"], level)
                note = ("one seed: no interval" if need is None else
                        f"the observed spread would need {need} seeds to decide")
            row.update(ours=m, low=lo, high=hi, level=level, seeds=n, verdict=verdict,
                       note=(c.get("note", "") + ("; " if c.get("note") and note else "") + note))
        if c.get("link"):
            row["link"] = c["link"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("claim")


def display_claims(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """``claim_table``'s result for reading: the paper's effect, ours with its interval and level, the
    verdict and its note (formatting only; the verdicts were decided before)."""
    def ours(r):
        if not np.isfinite(r["ours"]):
            return "—"
        if not np.isfinite(r["low"]):
            return f"{r['ours']:+.{digits}f} (one seed)" if np.isfinite(r["level"]) else f"{r['ours']:.{digits}f}"
        return f"{r['ours']:+.{digits}f} [{r['low']:+.{digits}f}, {r['high']:+.{digits}f}] at {100 * r['level']:.1f}%"
    out = pd.DataFrame({"paper": [f"{v:+.{digits}f}" if np.isfinite(v) else "—" for v in table["paper"]],
                        "ours (interval, level)": [ours(r) for _, r in table.iterrows()],
                        "unit": table["unit"], "seeds": [int(v) if np.isfinite(v) else "" for v in table["seeds"]],
                        "verdict": table["verdict"], "note": table["note"]}, index=table.index)
    return out


def publish_findings(*tables: pd.DataFrame, chapter: str) -> pd.DataFrame:
    """Glue a chapter's decided claims (``claim_table`` results) for the front page (``findings``: claim, the
    paper's effect, ours with its interval, verdict) and for the chapter's result box (``summary``: how many
    claims got which verdict). Returns the findings table."""
    from collections import Counter
    from IPython.display import Markdown
    shown = pd.concat([display_claims(t) for t in tables])[["paper", "ours (interval, level)", "unit", "verdict"]]
    counts = Counter(v for t in tables for v in t["verdict"])
    words = ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: VERDICTS.index(kv[0])))
    glue("findings", shown.rename_axis(f"{chapter}: claim"), display=False)
    glue("summary", Markdown(
        f"**{sum(counts.values())} claim(s) of the paper decided here: {words}.** Each verdict compares our paired "
        "per-seed difference and its interval with the paper's effect (rule on the methods page); the tables "
        "below give every number."), display=False)
    return shown


def publish_untested(chapter: str, why: str) -> None:
    """``publish_findings`` for a chapter whose profile decides no claim (``why`` says what is missing)."""
    from IPython.display import Markdown
    glue("findings", pd.DataFrame({"verdict": ["not tested at this profile"], "why": [why]},
                                  index=pd.Index([chapter], name=f"{chapter}: claim")), display=False)
    glue("summary", Markdown(f"**No claim is decided at this profile:** {why}"), display=False)


def ratio_bootstrap(runs: dict, paper_ratio: float, n_boot: int = 2000, seed: int = 0) -> dict:
    """002's claim "a relative accuracy loss of p% buys a relative defense gain of about ``paper_ratio``·p%",
    as a bootstrap over runs. ``runs`` = {run: {"dense": (accuracy, defense), "sparse": [(accuracy,
    defense), ...]}}; each draw resamples the runs with replacement, dense reference included, recomputes the
    dense means, the relative losses and gains (``relative_change``) and (a) their mean relative gain, (b) the
    slope through the origin. Returns the point estimates and the draws."""
    keys = sorted(runs)
    rng = np.random.default_rng(seed)

    def stats(chosen):
        dense = np.array([runs[k]["dense"] for k in chosen], dtype=float)
        pts = np.array([p for k in chosen for p in runs[k]["sparse"]], dtype=float)
        loss, gain = relative_change(dense[:, 0].mean(), dense[:, 1].mean(), pts[:, 0], pts[:, 1])
        slope = float(loss @ gain / (loss @ loss)) if np.any(loss) else np.nan
        return float(gain.mean()), slope
    gain, slope = stats(keys)
    draws = np.array([stats(rng.choice(keys, len(keys))) for _ in range(n_boot)])
    return {"mean_gain": gain, "slope": slope, "gain_draws": draws[:, 0], "slope_draws": draws[:, 1],
            "paper": paper_ratio, "runs": len(keys)}


def relative_change(dense_acc: float, dense_defense: float, acc, defense) -> tuple[np.ndarray, np.ndarray]:
    """002's relative accuracy loss (a0 − a)/a0 and relative defense gain (D − D0)/|D0| against the dense mean."""
    acc, defense = np.asarray(acc, dtype=float), np.asarray(defense, dtype=float)
    return (dense_acc - acc) / dense_acc, (defense - dense_defense) / abs(dense_defense)


def late_dips(entries_by_label: dict, drop: float = 20.0) -> pd.DataFrame:
    """Runs whose per-epoch test accuracy (curve subset) fell more than ``drop`` points below their best so
    far in the second half of training: one row per run, at its deepest such dip, with its final accuracy
    (a fixed epoch budget keeps such a dip in the reported numbers). ``entries_by_label`` = {label: entries}."""
    rows = []
    for label, entries in entries_by_label.items():
        for e in entries:
            acc = 100 * np.array([h["test_acc"] for h in e.result["history"]])
            best = np.maximum.accumulate(acc)
            fall = best - acc
            late = np.arange(len(acc)) >= len(acc) // 2
            if late.any() and fall[late].max() > drop:
                i = int(np.flatnonzero(late)[fall[late].argmax()])
                rows.append({"run": label, "seed": e.spec["seed"], "epoch": i + 1,
                             "test accuracy then (%)": acc[i], "best before (%)": best[i],
                             "final test accuracy (%)": 100 * e.result["test_acc"]})
    return pd.DataFrame(rows, columns=["run", "seed", "epoch", "test accuracy then (%)", "best before (%)",
                                       "final test accuracy (%)"])


def show_whole(df: pd.DataFrame) -> None:
    """Display ``df`` whole: no long text cell (a verdict's reason) cut to pandas' 50 characters, no row
    elided past pandas' 60 (the strong-attacks chapter's attack table has 72)."""
    from IPython.display import display
    with pd.option_context("display.max_colwidth", None, "display.max_rows", None):
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
                     "NN attack accuracy (%)": fmt([e.result["attacks"]["nn"]["accuracy"] for e in entries])})
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
                     "test accuracy (%)": 100 * e.result["test_acc"],
                     "gain G, selection half": metrics.inference_gain(member[select] == 1, score[select]),
                     "gain G, report half": metrics.inference_gain(member[rep] == 1, score[rep]),
                     "NN attack accuracy, report half (%)": 100 * metrics.attack_accuracy(member[rep] == 1,
                                                                                          score[rep] >= 0.5),
                     "NN attack collapsed": e.result["attacks"]["nn"]["collapsed"]})
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

"""How a claim is decided (DESIGN.md, "How a claim is decided"; the methods page states the rule): paired
per-seed differences, their intervals and levels, the verdict words, and 002's ratio bootstrap."""
from __future__ import annotations

import numpy as np
import pandas as pd


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

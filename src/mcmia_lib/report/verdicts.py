"""How a claim is decided (DESIGN.md, "How a claim is decided"; the methods page states the rule): paired
per-seed differences, their intervals and levels, the verdict words, and 002's ratio bootstrap."""
from __future__ import annotations

import numpy as np
import pandas as pd


VERDICTS = ("consistent", "smaller effect", "below half the claim, sign not resolved", "no effect", "contradicted",
            "inconclusive", "not testable", "collapsed", "one seed: no interval", "no verdict")
NEGLIGIBLE = 0.25  # "no effect": the interval lies within ± this fraction of the paper's effect (fixed beforehand)
POWER = 0.8  # the power at which an inconclusive claim's seeds are counted
MATCHED_UTILITY = 5.0  # test accuracy points beyond which two models are not at matched utility
SEEDS_CAP = 10_000  # ``seeds_needed`` searches no further


def paired_interval(diffs, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of the paired per-seed differences and its two-sided ``level`` t-interval; (mean, −inf, inf) with
    one seed, since one seed says nothing about seed-to-seed spread, and when all differences are equal: a
    zero-width interval would read a spread estimated as 0 from a few seeds as certainty (``claim_table`` says
    why)."""
    from scipy.stats import t as student
    d = np.asarray(diffs, dtype=float)
    if d.size == 0 or not np.all(np.isfinite(d)):
        raise ValueError(f"paired differences must be finite and non-empty, got {d.tolist()}")
    m = float(d.mean())
    if d.size < 2 or np.all(d == d[0]):
        return m, -np.inf, np.inf
    half = student.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    return m, m - half, m + half


def family_level(m: int, alpha: float = 0.05) -> float:
    """Bonferroni: the level at which each of a family's ``m`` intervals is read, so that all of them hold
    jointly with probability at least 1 − ``alpha`` (the family: a chapter's claims decided by an interval)."""
    return 1 - alpha / max(m, 1)


def directional_verdict(lo: float, hi: float, paper_effect: float, negligible: float = NEGLIGIBLE) -> str:
    """Verdict on "the effect is ``paper_effect`` (> 0, claimed direction positive)" from our interval, in words
    that say what the interval shows: contradicted (wholly below 0); consistent (0 excluded, reaches half the
    claim); smaller effect (0 excluded, wholly below half the claim); no effect (within ± ``negligible`` × the
    claim, a band fixed before looking); below half the claim, sign not resolved (0 inside, upper end below half
    the claim); inconclusive (0 and half the claim both inside)."""
    if not paper_effect > 0:
        raise ValueError(f"orient the claim so that the paper's effect is positive, got {paper_effect}")
    if hi < 0:
        return "contradicted"
    if lo > 0:
        return "consistent" if hi >= paper_effect / 2 else "smaller effect"
    if -negligible * paper_effect < lo and hi < negligible * paper_effect:
        return "no effect"
    return "below half the claim, sign not resolved" if hi < paper_effect / 2 else "inconclusive"


def equivalence_verdict(lo: float, hi: float, margin: float) -> str:
    """Verdict on "the two are about equal": consistent when the interval lies within ±``margin``,
    contradicted when it lies wholly outside it, inconclusive otherwise."""
    if -margin < lo and hi < margin:
        return "consistent"
    if lo > margin or hi < -margin:
        return "contradicted"
    return "inconclusive"


def seeds_needed(diffs, distance: float, level: float, power: float = POWER, cap: int = SEEDS_CAP) -> int | None:
    """Seeds at which a ``level`` interval would, with probability ``power``, end on one side of a boundary
    ``distance`` away from the observed mean, if the true mean and spread were the observed ones: the smallest n
    with (t_{(1+level)/2, n−1} + t_{power, n−1}) · sd / √n < ``distance``. None with fewer than two seeds; the
    current count when there is no spread; ``cap`` when none up to it would do (a mean on a boundary)."""
    from scipy.stats import t as student
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return None
    sd = d.std(ddof=1)
    if sd == 0:
        return int(d.size)
    for n in range(2, cap + 1):
        if (student.ppf(0.5 + level / 2, n - 1) + student.ppf(power, n - 1)) * sd / np.sqrt(n) < distance:
            return n
    return cap


def decision_distance(mean: float, paper_effect: float | None = None, margin: float | None = None) -> float:
    """How far the observed mean lies from the boundary a decision needs: for a directional claim, from 0 or
    from half the paper's effect, whichever is farther; for an equivalence claim, from the margin."""
    if margin is not None:
        return abs(margin - abs(mean))
    return max(abs(mean), abs(paper_effect / 2 - mean))


def claim_table(claims: list[dict], alpha: float = 0.05, replicates: str = "seeds") -> pd.DataFrame:
    """Decide one chapter's claims, one family (methods page, "How a claim is decided"). Each claim is a dict
    with ``claim`` (text), ``paper`` (the paper's effect, oriented positive), ``unit``, and either ``diffs`` (our
    paired per-seed differences, same orientation) or ``samples`` (bootstrap draws of our effect); optional:
    ``kind`` "equivalence" with ``margin``, ``collapsed`` / ``not_testable`` (the reason, when the defended model
    predicts at chance / the reference model does not leak), ``fixed`` (verdict, reason) for a claim no interval
    decides, ``accuracies`` (the two compared models' test accuracies, %: a gap over ``MATCHED_UTILITY`` points
    is noted beside the verdict), ``link``, ``configuration``, ``comparator`` (carried through).

    The claims with an interval (two or more seeds, or bootstrap draws) form the family: each interval is read at
    the Bonferroni level ``family_level(m)``, so that all of them hold jointly at 1 − ``alpha``; the verdict comes
    from it (``directional_verdict`` / ``equivalence_verdict``), on unrounded values. A one-seed claim has no
    interval: "one seed: no interval", outside the family, with its value. Collapsed comes first; a contradicted
    claim stays contradicted when its reference does not leak (the defense made things worse); otherwise not
    testable replaces the interval's verdict. An inconclusive claim's note gives the seeds a decision needs at
    ``POWER`` (counted in ``replicates``: seeds, or the comparison's model indices); one whose differences are
    all equal is inconclusive and says so. Numeric columns stay numeric; ``display_claims`` formats them."""
    def in_family(c):
        return "fixed" not in c and ("samples" in c or len(c["diffs"]) >= 2)
    family = [i for i, c in enumerate(claims) if in_family(c)]
    level = family_level(len(family), alpha)
    rows = []
    for i, c in enumerate(claims):
        row = {"claim": c["claim"], "paper": c.get("paper", np.nan), "unit": c.get("unit", ""),
               "ours": np.nan, "low": np.nan, "high": np.nan, "level": np.nan, "seeds": np.nan, "note": ""}
        notes = [c["note"]] if c.get("note") else []
        if "fixed" in c:  # decided without the family's interval; it may show the quantity that decided it
            row["verdict"], reason = c["fixed"]
            notes.append(reason)
            row.update({k: c[k] for k in ("ours", "low", "high", "level", "seeds") if k in c})
        elif i not in family:  # a collapsed model needs no interval: it predicts nothing
            row.update(ours=float(np.mean(c["diffs"])), seeds=len(c["diffs"]),
                       verdict="collapsed" if c.get("collapsed") else "one seed: no interval")
            if c.get("collapsed"):
                notes.append(c["collapsed"])
        else:
            if "samples" in c:
                x = np.asarray(c["samples"], dtype=float)
                m, lo, hi = float(c.get("ours", np.mean(x))), *np.quantile(x, [(1 - level) / 2, (1 + level) / 2])
                n = c.get("seeds", np.nan)
            else:
                m, lo, hi = paired_interval(c["diffs"], level)
                n = len(c["diffs"])
            verdict = (equivalence_verdict(lo, hi, c["margin"]) if c.get("kind") == "equivalence"
                       else directional_verdict(lo, hi, c["paper"]))
            flat = "diffs" in c and not np.isfinite(lo)  # two or more seeds, all differences equal
            if c.get("collapsed"):
                verdict = "collapsed"
                notes.append(c["collapsed"])
            elif c.get("not_testable") and (verdict != "contradicted" or c.get("kind") == "equivalence"):
                verdict = "not testable"  # a directional claim contradicted stays so: the defense made it worse
                notes.append(c["not_testable"])
            elif flat:
                notes.append(f"all {len(c['diffs'])} paired differences are equal ({m:+.2f}): no spread to build "
                             "an interval from")
            elif verdict == "inconclusive" and "diffs" in c:
                distance = (decision_distance(m, margin=c["margin"]) if c.get("kind") == "equivalence"
                            else decision_distance(m, c["paper"]))
                need = seeds_needed(c["diffs"], distance, level)
                notes.append(f"{need} {replicates} would decide it with {POWER:.0%} power at the observed spread"
                             if need < SEEDS_CAP else f"more than {SEEDS_CAP:,} {replicates} would be needed to decide it "
                             "at the observed spread (its mean sits on a decision boundary)")
            row.update(ours=m, low=lo, high=hi, level=level, seeds=n, verdict=verdict)
        if c.get("accuracies") is not None:
            a, b = c["accuracies"]
            if abs(a - b) > MATCHED_UTILITY:
                notes.append(f"not at matched utility: test accuracies {a:.1f}% vs {b:.1f}%")
        row["note"] = "; ".join(notes)
        for k in ("link", "configuration", "comparator"):  # carried through for the caller (a link, a row's key)
            if c.get(k):
                row[k] = c[k]
        rows.append(row)
    return pd.DataFrame(rows).set_index("claim")


def display_claims(table: pd.DataFrame, digits: int = 2, replicates: str = "seeds") -> pd.DataFrame:
    """``claim_table``'s result for reading: the paper's effect, ours with its interval and level, the
    verdict and its note (formatting only; the verdicts were decided before)."""
    def ours(r):
        if not np.isfinite(r["ours"]):
            return "—"
        if not np.isfinite(r["low"]):
            return f"{r['ours']:+.{digits}f} (one seed)" if r["verdict"] == "one seed: no interval" \
                else f"{r['ours']:.{digits}f}"
        return f"{r['ours']:+.{digits}f} [{r['low']:+.{digits}f}, {r['high']:+.{digits}f}] at {100 * r['level']:.1f}%"
    out = pd.DataFrame({"paper": [f"{v:+.{digits}f}" if np.isfinite(v) else "—" for v in table["paper"]],
                        "ours (interval, level)": [ours(r) for _, r in table.iterrows()],
                        "unit": table["unit"], replicates: [int(v) if np.isfinite(v) else "" for v in table["seeds"]],
                        "verdict": table["verdict"], "note": table["note"]}, index=table.index)
    return out


def ratio_runs(runs: dict, paper_ratio: float) -> dict:
    """002's claim "a relative accuracy loss of p% buys a relative defense gain of about ``paper_ratio``·p%", per
    run. ``runs`` = {run: {"dense": (accuracy, defense), "sparse": [(accuracy, defense), ...]}}; in each run the
    sparse networks' relative losses and gains against that run's dense network (``relative_change``) give a
    slope through the origin and a mean relative gain. The runs are the replicates: ``claim_table`` reads a
    t-interval over them (a parametric interval; a bootstrap over three runs has 27 ordered draws, 10 distinct, so its
    "95 %" interval is about the range of the three values). Returns the per-run values, their means and the
    pooled (loss, gain) points."""
    slopes, gains, losses, points = [], [], [], []
    for r in sorted(runs):
        dense = runs[r]["dense"]
        pts = np.array(runs[r]["sparse"], dtype=float)
        loss, gain = relative_change(dense[0], dense[1], pts[:, 0], pts[:, 1])
        slopes.append(float(loss @ gain / (loss @ loss)) if np.any(loss) else np.nan)
        gains.append(float(gain.mean()))
        losses.append(float(loss.mean()))
        points += list(zip(loss, gain))
    return {"slopes": slopes, "gains": gains, "losses": losses, "slope": float(np.mean(slopes)),
            "mean_gain": float(np.mean(gains)), "mean_loss": float(np.mean(losses)),
            "points": np.array(points), "paper": paper_ratio, "runs": len(slopes)}


def relative_change(dense_acc, dense_defense, acc, defense) -> tuple[np.ndarray, np.ndarray]:
    """002's relative accuracy loss (a0 − a)/a0 and relative defense gain (D − D0)/|D0| against the dense
    network's accuracy a0 and defense D0 (numbers, or one per point)."""
    a0, d0 = np.asarray(dense_acc, dtype=float), np.asarray(dense_defense, dtype=float)
    acc, defense = np.asarray(acc, dtype=float), np.asarray(defense, dtype=float)
    return (a0 - acc) / a0, (defense - d0) / np.abs(d0)

"""Strong attacks (notebooks/strong_attacks.ipynb): LiRA and RMIA with every model of a leave-one-out grid the
target in turn, on the undefended model and DP-SGD, with canaries and an empirical ε."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ..report.references import ROW_NAMES

from . import (Results, as_dict, entries, TRAIN_SIZE, ChapterParams, Model, Profile, batch, count, epoch_count, fraction, number, one_seed,
               plain, width_factor, word)

StrongDataset = Literal["mnist", "fashion_mnist"]  # the chapter's rows


@dataclass(frozen=True)
class Params(ChapterParams):
    """The strong-attack chapter's parameters."""

    profile: Profile = plain()
    datasets: list[StrongDataset] = word(nonempty=True, distinct=True)
    model: Model = word()
    width: float = width_factor()
    n_pool: int = count(2, TRAIN_SIZE["mnist"], "the training images of mnist")  # examples the models train on
    n_canary: int = count(0, TRAIN_SIZE["mnist"], "the training images of mnist")  # mislabeled among them
    n_models: int = count(2, 1024, "1,024 models per configuration")  # even: each example in exactly half
    pool_seed: int = one_seed()
    epochs: int = epoch_count()
    batch_size: int = batch()
    lr: float = number(gt=0)
    momentum: float = fraction()
    curve_subset: int | None = count(2, 10000, "the test images")
    epsilons: list[float] = number(gt=0, max=1000, nonempty=True)  # DP-SGD's target ε, one configuration each
    delta: float = fraction(gt=0)
    max_grad_norm: float = number(gt=0)
    ref_counts: list[int] = count(1, 1024, nonempty=True, distinct=True)  # reference models per attack
    n_boot: int = count(2, 100_000)  # bootstrap draws of the intervals

    @classmethod
    def relations(cls, p):
        if p.n_models % 2:
            yield "n_models", f"must be even (each example a member of exactly half), got {p.n_models}"
        if p.n_canary > p.n_pool:
            yield "n_canary", f"must be <= n_pool ({p.n_pool}), got {p.n_canary}"
        too_many = [r for r in p.ref_counts if r > p.n_models - 2]
        if too_many:
            yield "ref_counts", (f"each must be <= n_models - 2 ({p.n_models - 2}: an example has n_models / 2 - 1 "
                                 f"models on its smaller side), got {too_many[0]}")


def stages(p: Params, store=None):
    """One stage: the leave-one-out grid of each data set and configuration."""
    from ..experiments import strong_attack_specs
    yield [s for specs in strong_attack_specs(as_dict(p)).values() for s in specs]


def cell(r, k) -> str:
    """value [interval] in %; TPRs also with the bootstrap over targets (b: ...)."""
    if not np.isfinite(r[k]):
        return "n/a"
    text = f"{100 * r[k]:.2f} [{100 * r[f'{k}_lo']:.2f}, {100 * r[f'{k}_hi']:.2f}]"
    boot = r.get(f"{k}_boot_lo")
    if boot is not None and np.isfinite(boot):
        text += f" (b: {100 * boot:.2f}, {100 * r[f'{k}_boot_hi']:.2f})"
    return text


SUBSETS = ("clean", "canaries")  # the findings' two columns: pool examples with their true label, mislabeled


def named_attack(choice: dict, row: dict | None, key: str, chance: float) -> str:
    """The strongest attack's name; "at chance" when its bootstrap interval holds the chance rate (or its rate is
    not resolved), since no attack is then strongest; both names when the two halves of the targets chose
    different attacks above chance."""
    lo = row.get(f"{key}_boot_lo", np.nan) if row else np.nan
    if not np.isfinite(lo) or lo <= chance:
        return "at chance"
    if choice["agree"]:
        return choice["attack"].replace("_", " ")
    return f"{choice['half_a'].replace('_', ' ')} or {choice['half_b'].replace('_', ' ')} (the halves disagree)"


def boot_pct(row: dict | None, key: str) -> str:
    """TPR in % with its bootstrap interval over the target models; "n/a" where the subset cannot resolve it."""
    if row is None or not np.isfinite(row[key]) or not np.isfinite(row.get(f"{key}_boot_lo", np.nan)):
        return "n/a"
    return f"{100 * row[key]:.2f} [{100 * row[key + '_boot_lo']:.2f}, {100 * row[key + '_boot_hi']:.2f}]"


def findings(rows: list[dict], choices: dict, audits: dict, accuracy: dict, fpr: float = 0.001) -> pd.DataFrame:
    """The chapter's findings, one row per data set and configuration: test accuracy; the chance TPR at ``fpr``;
    per subset (clean examples, canaries) the strongest attack (``named_attack``) and its TPR with the bootstrap
    interval over targets; the threshold attack on clean examples; the empirical ε (``report.audit.one_run_audit``):
    the best counted target's bound at the Bonferroni level over them (all hold jointly, so it is a 95 % lower
    bound), the per-target 95 % bounds as description (median [min, max], not themselves a bound), the largest ε
    that level certifies, and the accountant's. ``rows``: ``attack_summary`` rows with "data set" and "configuration"."""
    key, out = f"tpr@{fpr:g}", []
    by = {(r["data set"], r["configuration"], r["attack"], r["subset"]): r for r in rows}
    for (d, c), a in audits.items():
        row = {"data set": d, "configuration": c, "test accuracy (%)": f"{accuracy[(d, c)]:.2f}",
               f"chance TPR @ {100 * fpr:g} % FPR (%)": f"{100 * fpr:g}"}
        for subset in SUBSETS:
            chosen = by.get((d, c, choices[(d, c)][subset]["attack"], subset))
            row[f"{subset}: strongest attack"] = named_attack(choices[(d, c)][subset], chosen, key, fpr)
            row[f"{subset}: TPR (%)"] = boot_pct(chosen, key)
        row["threshold attack, clean (%)"] = boot_pct(by.get((d, c, "threshold", "clean")), key)
        row["empirical ε (95 % lower bound, best target)"] = f"{a['joint_max']:.2f}"
        row["per-target bounds: median [min, max]"] = (f"{a['median']:.2f} [{a['min']:.2f}, {a['max']:.2f}] "
                                                       f"of {a['targets_counted']}")
        row["largest certifiable ε"] = f"{a['joint_certifiable']:.2f}"
        row["accountant ε"] = f"{a['accountant']:.2f}" if np.isfinite(a["accountant"]) else "none (not DP)"
        out.append(row)
    return pd.DataFrame(out).set_index(["data set", "configuration"])


@dataclass
class StrongResults(Results):
    warning: str | None  # a target certifying more ε than the accountant's (Markdown; None: none)
    choice_note: str  # whether the halves chose the same strongest attack (Markdown)
    findings: pd.DataFrame  # per data set and configuration: the strongest attacks' TPRs and the empirical ε
    settings: pd.DataFrame
    accuracy: pd.DataFrame  # test, member and canary accuracy per configuration
    attacks: pd.DataFrame  # every attack, subset and metric with its intervals
    roc_panels: dict  # data set -> panel -> attack -> (membership, scores), for the log-log ROC curves
    epsilon: pd.DataFrame  # the one-run audit per configuration
    awareness: pd.DataFrame | None  # defense-aware vs unaware references (None: no defended configuration)
    references: pd.DataFrame  # TPR at 1 % FPR per number of reference models (long form, for the figure)
    compute_note: str  # core-minutes (Markdown)


def results(p: Params, store=None) -> StrongResults:
    from ..attacks import strong
    from ..experiments import strong_attack_configs, strong_attack_specs
    from ..report import audit, tables
    from . import read
    q = as_dict(p)
    e = entries(stages(p, store), store)
    configs = strong_attack_configs(p.epsilons)
    grids = {key: e(ss) for key, ss in strong_attack_specs(q).items()}
    scores, rows, audits, choices, test_acc = {}, [], {}, {}, {}
    for (d, c), es in grids.items():
        g = strong.grid_arrays(es)
        sc = strong.attack_scores(g)
        scores[(d, c)] = (g, sc)
        k = (ROW_NAMES[d], c)
        rows += [{"data set": k[0], "configuration": c, **r}
                 for r in strong.attack_summary(sc, g["member"], g["canary"], n_boot=p.n_boot)]
        # chosen at 0.1 % FPR, or where a half's non-members of the subset resolve the rate (10 false positives)
        choices[k] = {subset: strong.strongest_attack(
            sc, g["member"], columns=cols, fpr=max(0.001, 10 / ((~g["member"][:, cols]).sum() / 2)))
            for subset, cols in zip(SUBSETS, (~g["canary"], g["canary"]))}
        out = audit.one_run_audit(sc, g["member"], g["canary"], delta=p.delta)
        # each counted target's bound at the Bonferroni level over them: all hold jointly, so the best is a 95 %
        # lower bound on the configuration's ε; the check against the accountant's can fail below the largest ε
        # that level certifies
        joint = 1 - 0.05 / out["targets_counted"]
        out["joint_max"] = max(audit.epsilon_lower_bound(out["canaries"], r, v, p.delta, joint)
                               for r, v in out["guesses"])
        out["joint_certifiable"] = audit.largest_certifiable(out["canaries"], p.delta, joint)
        out["accountant"] = np.mean([x.result["dp"]["epsilon"] for x in es]) if c != "Undefended" else np.inf
        audits[k] = out
        test_acc[k] = 100 * np.mean([x.test_acc for x in es])
    summary = pd.DataFrame(rows)
    above = [f"{d} {c} ({a['joint_max']:.2f} > {a['accountant']:.2f})" for (d, c), a in audits.items()
             if a["joint_max"] > a["accountant"]]
    warning = ("**Warning: a target certifies more ε than the accountant's for " + ", ".join(above)
               + ". That cannot happen for a correct DP-SGD run: training, accounting or the attack is wrong.**"
               ) if above else None
    disagree = [f"{d} {c}, {subset} ({ch['half_a']} on one half, {ch['half_b']} on the other)"
                for (d, c), chs in choices.items() for subset, ch in chs.items() if not ch["agree"]]
    choice_note = ("The two halves of the targets chose the same strongest attack in every configuration and subset."
                   if not disagree else "The halves of the targets chose different attacks for " + "; ".join(disagree)
                   + ". Where the chosen attack's interval holds the chance rate, the table says \"at chance\".")
    table = findings(rows, choices, audits, test_acc)

    accuracy = pd.DataFrame([{"data set": ROW_NAMES[d], "configuration": c,
                              "test accuracy (%)": 100 * np.mean([x.test_acc for x in es]),
                              "± (sd over models)": 100 * np.std([x.test_acc for x in es], ddof=1),
                              "member accuracy (%)": 100 * np.mean([x.train_acc for x in es]),
                              "member canaries fit (%)": 100 * np.mean([x.result["canary_train_acc"] for x in es]),
                              "accountant ε": np.mean([x.result["dp"]["epsilon"] for x in es]) if "dp" in es[0].result
                              else np.inf}
                             for (d, c), es in grids.items()]).set_index(["data set", "configuration"])
    attacks = pd.DataFrame([{"data set": r["data set"], "configuration": r["configuration"], "subset": r["subset"],
                             "attack": r["attack"], "AUC (%)": cell(r, "auc"), "TPR @ 1 % FPR (%)": cell(r, "tpr@0.01"),
                             "TPR @ 0.1 % FPR (%)": cell(r, "tpr@0.001"),
                             "TPR @ 0.01 % FPR (%)": cell(r, "tpr@0.0001")}
                            for _, r in summary.iterrows()]).set_index(["data set", "configuration", "subset", "attack"])

    roc_panels = {}
    for d in p.datasets:
        panels = {}
        for c in configs:
            g, sc = scores[(d, c)]
            for subset, cols in zip(SUBSETS, (~g["canary"], g["canary"])):
                panels[f"{c}, {subset}"] = {a: (g["member"][:, cols].ravel(), s[:, cols].ravel())
                                            for a, s in sc.items() if np.all(np.isfinite(s))}
        roc_panels[d] = panels

    aware_rows = []
    for (d, c), (g, sc) in scores.items():
        if c == "Undefended":
            continue
        unaware = strong.attack_scores(g, attacks=("lira_online", "rmia"), references=scores[(d, "Undefended")][0])
        for refs, s in (("own configuration", {a: sc[a] for a in ("lira_online", "rmia")}), ("undefended", unaware)):
            for r in strong.attack_summary(s, g["member"], g["canary"], n_boot=p.n_boot):
                aware_rows.append({"data set": ROW_NAMES[d], "configuration": c, "subset": r["subset"], "attack": r["attack"],
                                   "reference models": refs, "AUC (%)": cell(r, "auc"),
                                   "TPR @ 1 % FPR (%)": cell(r, "tpr@0.01"), "TPR @ 0.1 % FPR (%)": cell(r, "tpr@0.001")})
    awareness = pd.DataFrame(aware_rows).set_index(["data set", "configuration", "subset", "attack",
                                                    "reference models"]) if aware_rows else None

    ref_rows = []
    for (d, c), (g, _) in scores.items():
        for r in p.ref_counts:
            sc = strong.attack_scores(g, attacks=("lira_fixed_variance", "lira_online", "rmia"), n_refs=r)
            for row in strong.attack_summary(sc, g["member"], g["canary"], n_boot=2):
                ref_rows.append({"references": r, "attack": row["attack"], "tpr": 100 * row["tpr@0.01"],
                                 "panel": f"{ROW_NAMES[d]} {c}, {row['subset']}", "ylabel": "TPR at 1 % FPR (%)"})

    epsilon = pd.DataFrame([{"data set": d, "configuration": c, "attack": a["attack"], "canaries": a["canaries"],
                             "guessed member (top)": a["guess_in"], "guessed non-member (bottom)": a["guess_out"],
                             "targets counted": a["targets_counted"], "median ε": a["median"], "min ε": a["min"],
                             "max ε": a["max"], "best target, joint level (95 % bound)": a["joint_max"],
                             "largest certifiable, joint level": a["joint_certifiable"], "accountant ε": a["accountant"]}
                            for (d, c), a in audits.items()]).set_index(["data set", "configuration"]).round(3)
    everything = [x for es in grids.values() for x in es]
    minutes = sum(x.seconds for x in everything) / 60
    compute_note = (f"This chapter's {len(everything)} models cost {minutes:.1f} core-minutes end to end (one thread "
                    "per model, wall time recorded in each entry); the table's compute column counts the training "
                    "epochs alone. The attacks read the stored logits and retrain nothing.")
    return StrongResults(
        {f"{ROW_NAMES[d]} {c}": es for (d, c), es in grids.items()}, {}, warning, choice_note, table,
        tables.settings_table(q, as_dict(read("strong_attacks", "paper"))), accuracy.round(2), attacks, roc_panels,
        epsilon, awareness,
        pd.DataFrame(ref_rows), compute_note)

"""MCMIA on MNIST LeNet-5 (notebooks/mcmia_lenet5.ipynb): the four regimes of 000/001 (baseline, MCMIA-Pruning,
Min-Max, Pruning & Min-Max) and Algorithm 1's choice of per-layer pruning rates."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import (Results, as_dict, entries, TRAIN_SIZE, ChapterParams, Dataset, Model, Optimizer, Profile, batch, count, epoch_count, fraction,
               members_fit, number, one_seed, plain, seed_list, width_factor, word)


@dataclass(frozen=True)
class Params(ChapterParams):
    """The LeNet-5 MCMIA chapter's parameters."""

    profile: Profile = plain()
    dataset: Dataset = word()
    model: Model = word()
    width: float = width_factor()
    n_target: int | None = count(2, max(TRAIN_SIZE.values()), "the largest training set")  # None: all images
    epochs: int = epoch_count()  # baseline and Min-Max training epochs
    pretrain_epochs: int | None = epoch_count()  # the pruned regimes' pretraining (None: ``epochs``)
    batch_size: int = batch()
    lr: float = number(gt=0)
    optimizer: Optimizer = word()
    rates: list[float] = fraction()  # per-layer pruning rates, each in [0, 1)
    admm_epochs: int = epoch_count()
    retrain_epochs: int = epoch_count()
    rho: float = number(gt=0)  # ADMM penalty
    rho_growth: float = number(min=1, max=10)  # its factor per epoch
    minmax_lam: float = number(min=0)  # weight of the adversarial term
    minmax_steps: int = count(1, 1000)  # attack-model steps per target step
    minmax_attack_lr: float = number(gt=0)
    nn_epochs: int = epoch_count()
    seeds: list[int] = seed_list()
    figure_seed: int = one_seed()  # the seed whose networks the figures show
    rate_candidates: list[list[float]] = fraction()  # Algorithm 1's candidate rate vectors

    @classmethod
    def relations(cls, p):
        yield from members_fit("n_target", p.n_target, [p.dataset])
        for i, r in enumerate(p.rate_candidates):
            if len(r) != len(p.rates):
                yield f"rate_candidates[{i}]", f"must have one rate per layer ({len(p.rates)}, as rates), got {len(r)}"


def stages(p: Params, store=None):
    """One stage: every method of 000/001 per seed, and the pruning-rate candidates (Algorithm 1) on the first."""
    from ..experiments import METHODS, mcmia_spec
    q = as_dict(p)
    yield ([mcmia_spec(q, m, s) for m in METHODS for s in p.seeds]
           + [mcmia_spec(q, "pruning", p.seeds[0], rates=r) for r in p.rate_candidates])


ROW = "MNIST-LeNet-5"  # 000's table row


@dataclass
class LeNetResults(Results):
    settings: pd.DataFrame
    scaling: str  # the scaled-down recipe, in words (Markdown)
    methods: dict  # method label -> its targets (entries), one per seed
    table_ii: pd.DataFrame  # Table II's row beside ours
    table_iv: pd.DataFrame  # Table IV's row beside ours
    verdicts: pd.DataFrame  # defense claims decided (``verdicts.claim_table``)
    cost_note: str  # test accuracy lost per defense (Markdown)
    attacks: pd.DataFrame  # every attack on every method
    layers: pd.DataFrame  # Table V from the masks: per layer
    table_v: pd.DataFrame  # Table V: totals beside the paper's
    table_vi: pd.DataFrame  # train, test and attack accuracy per method
    minmax_note: str  # the Min-Max adversary's last-epoch gain against chance (Markdown)
    js: pd.DataFrame  # gain and JS divergence (``tables.js_table``)
    algorithm1: pd.DataFrame  # Algorithm 1's candidates (``tables.algorithm1``)
    algorithm1_note: str  # what Algorithm 1 chose and whether the choice is above noise (Markdown)
    figure_specs: dict  # method label -> the figure seed's spec (Figure 3 loads its trained weights)

    def figure_models(self) -> dict:
        """The figure seed's trained network of each method (from data/weights, trained there when absent)."""
        from ..runner import trained_model
        return {label: trained_model(spec) for label, spec in self.figure_specs.items()}


def results(p: Params, store=None) -> LeNetResults:
    import numpy as np

    from .. import claims as claim_lib, metrics
    from ..report import references, tables
    from ..report.verdicts import claim_table
    from ..experiments import LABELS, METHODS, mcmia_spec
    from . import read
    q = as_dict(p)
    e = entries(stages(p, store), store)
    methods = {LABELS[m]: e([mcmia_spec(q, m, s) for s in p.seeds]) for m in METHODS}
    base, pruned, minmax, both = methods.values()
    nn = lambda es: [x.attack("nn")["accuracy"] for x in es]  # noqa: E731
    test = lambda es: [x.test_acc for x in es]  # noqa: E731
    ref = lambda column, table="II": references.reference(ROW, column, table=table)  # noqa: E731

    scaling = (
        f"**Scaling for 2 CPU cores.** Every target trains on {p.n_target or 60000:,} MNIST digits with the full "
        f"LeNet-5 for {p.epochs} epochs (the papers: 300) with Adam {p.lr:g} (the printed 0.05 does not train "
        f"LeNet-5; baseline chapter). The pruned models start from the {p.pretrain_epochs or p.epochs}-epoch baseline "
        f"(the papers pretrain 200 epochs) and use {p.admm_epochs} ADMM and {p.retrain_epochs} retraining epochs. "
        f"Min-Max uses λ = {p.minmax_lam:g} and the inference model's Adam at {p.minmax_attack_lr:g} (001 App. D "
        f"prints 1e-5), {p.minmax_steps} inference step(s) per classifier step (001 runs about one pass of the "
        "inference data per epoch; one step per classifier batch is about two passes).")
    table_ii = tables.paper_vs_ours([
        (f"{label} {what} (%)", ref(f"{label} {col}"), values)
        for label, es in (("baseline", base), ("MCMIA-Pruning", pruned), ("Min-Max", minmax))
        for what, col, values in (("test accuracy", "test accuracy", test(es)),
                                  ("NN attack accuracy", "attack accuracy", nn(es)))])
    table_iv = tables.paper_vs_ours([
        ("MCMIA-Pruning test accuracy (%)", ref("MCMIA-Pruning test accuracy", "IV"), test(pruned)),
        ("MCMIA-Pruning NN attack accuracy (%)", ref("MCMIA-Pruning attack accuracy", "IV"), nn(pruned)),
        ("Pruning & Min-Max test accuracy (%)", ref("Pruning & Min-Max test accuracy", "IV"), test(both)),
        ("Pruning & Min-Max NN attack accuracy (%)", ref("Pruning & Min-Max attack accuracy", "IV"), nn(both)),
    ])
    paper_attack = lambda label, table: ref(f"{label} attack accuracy", table)["value"]  # noqa: E731
    claims = claim_lib.defense_lowers_attack(
        ROW, base, {"MCMIA-Pruning": pruned, "Min-Max": minmax, "Pruning & Min-Max": both},
        paper_attack("baseline", "II"),
        {"MCMIA-Pruning": paper_attack("MCMIA-Pruning", "II"), "Min-Max": paper_attack("Min-Max", "II"),
         "Pruning & Min-Max": paper_attack("Pruning & Min-Max", "IV")}, num_classes=10)
    verdicts = claim_table(claims)
    cost = {label: 100 * (np.mean(test(base)) - np.mean(test(es))) for label, es in methods.items() if label != "Baseline"}
    cost_note = ("Paired per-seed differences (baseline − defended NN-attack accuracy, points), 000's effect "
                 "beside ours, rule and Holm levels on the methods page. "
                 "Test accuracy lost: " + "; ".join(f"{k} {v:+.2f} points" for k, v in cost.items()) + ".")

    layers = pd.DataFrame(pruned[0].result["sparsity"]).set_index("layer")[["weights", "nonzero", "pruned"]]
    layers["pruned (%)"] = (100 * layers.pop("pruned")).round(2)
    weights, kept = layers["weights"].sum(), layers["nonzero"].sum()
    paper_v = [references.reference("MNIST-LeNet", c, table="V") for c in ("weights", "weights after pruning", "reduction ratio")]
    table_v = pd.DataFrame({"paper (000 Table V)": [r["value"] for r in paper_v],
                            "ours (conv/linear weights)": [weights, kept, round(weights / kept, 2)]},
                           index=["weights", "weights after pruning", "reduction ratio"])
    table_vi = pd.DataFrame([{"method": label, "train accuracy (%)": tables.fmt([x.train_acc for x in es]),
                              "test accuracy (%)": tables.fmt(test(es)), "NN attack accuracy (%)": tables.fmt(nn(es)),
                              "loss-attack AUC (%)": tables.fmt([x.attack("loss")["auc"] for x in es])}
                             for label, es in methods.items()]).set_index("method")

    last = {k: np.mean([[h["minmax_gain"] for h in x.history if "minmax_gain" in h][-1] for x in methods[k]])
            for k in ("Min-Max", "Pruning & Min-Max")}
    minmax_note = ("In the last epoch the gain is " + ", ".join(f"{v:.4f} ({k})" for k, v in last.items())
                   + f" against {-np.log(4):.4f} for an inference model at chance.")

    sweep = e([mcmia_spec(q, "pruning", p.seeds[0], rates=r) for r in p.rate_candidates])
    table, chosen, oracle = tables.algorithm1(sweep, p.rate_candidates, seed=p.seeds[0])
    order = np.sort(table["gain G, selection half"].to_numpy())
    margin = order[1] - order[0] if len(order) > 1 else float("nan")
    per_method_sd = [np.std([metrics.inference_gain(x.arrays["eval_member"], x.arrays["score_nn"]) for x in es],
                            ddof=1) for es in methods.values() if len(es) > 1]
    noise = float(np.mean(per_method_sd)) if per_method_sd else float("nan")
    algorithm1_note = (
        f"Algorithm 1 chooses {table['rates'][chosen]} on the selection half"
        + (", the same candidate the report half would pick. " if chosen == oracle else
           f"; the report half alone would pick {table['rates'][oracle]} (oracle). ")
        + f"The chosen candidate's gain is {margin:.4f} nats below the next best on the selection half; the "
        f"seed-to-seed standard deviation of the gain (mean over the four methods above) is {noise:.4f} nats. " + (
            "With one seed the noise cannot be judged." if not np.isfinite(noise) else
            "The choice is within seed-to-seed noise: on this target Algorithm 1 cannot tell the candidates apart."
            if margin < 2 * noise else "The margin exceeds twice the seed-to-seed deviation.")
        + " A collapsed NN attack (constant output) has a gain of exactly −log 4.")
    targets = [x for es in methods.values() for x in es]
    return LeNetResults(
        {"Tables II, IV, VI, verdicts, attacks, Figures 2 and 4, JS": targets, "Table V (masks)": [pruned[0]],
         "Algorithm 1": sweep}, {},
        tables.settings_table(q, as_dict(read("mcmia_lenet5", "paper"))), scaling, methods, table_ii, table_iv,
        verdicts, cost_note, pd.concat({label: tables.attack_table(es) for label, es in methods.items()},
                                       names=["method"]),
        layers, table_v, table_vi, minmax_note, tables.js_table(methods), table.round(4), algorithm1_note,
        {label: mcmia_spec(q, m, p.figure_seed) for m, label in LABELS.items()})

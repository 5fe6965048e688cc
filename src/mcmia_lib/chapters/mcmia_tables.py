"""MCMIA tables (notebooks/mcmia_tables.ipynb): 000's and 001's tables from the store entries of the LeNet-5 and
CIFAR-10 chapters at the same profile; it has no parameter but the profile."""
from __future__ import annotations

from dataclasses import dataclass

from . import ChapterParams, Profile, Results, as_dict, entries, plain, read


@dataclass(frozen=True)
class Params(ChapterParams):
    """The tables chapter's parameters: the profile whose store entries it reads."""

    profile: Profile = plain()


def _specs(p: Params) -> dict:
    from ..experiments import mcmia_specs
    return mcmia_specs(as_dict(read("mcmia_lenet5", p.profile)), as_dict(read("mcmia_cifar10", p.profile)))


def stages(p: Params, store=None):
    """One stage: the entries of the LeNet-5 and CIFAR-10 chapters at the same profile."""
    yield [s for specs in _specs(p).values() for s in specs]


def cells(runs: dict) -> dict:
    """Our per-seed values for the cells of 000's Tables II and IV–VI from ``runs`` ({(row, method label):
    entries}): {(row, column): [values]} in the papers' units (percent; the reduction ratio from the masks)."""
    ours = {}
    for (row, label), es in runs.items():
        name = "baseline" if label == "Baseline" else label
        ours[(row, f"{name} test accuracy")] = [100 * e.test_acc for e in es]
        ours[(row, f"{name} attack accuracy")] = [100 * e.attack("nn")["accuracy"] for e in es]
        if row == "CIFAR-10-VGG16":  # Table VI is VGG16 / CIFAR-10
            ours[(label, "train accuracy")] = [100 * e.train_acc for e in es]
            ours[(label, "test accuracy")] = ours[(row, f"{name} test accuracy")]
            ours[(label, "attack accuracy")] = ours[(row, f"{name} attack accuracy")]
        if label == "MCMIA-Pruning":
            sp = es[0].result["sparsity"]
            short = row.replace("CIFAR-10-", "CIFAR-").replace("LeNet-5", "LeNet")
            ours[(short, "reduction ratio")] = [sum(layer["weights"] for layer in sp) / sum(layer["nonzero"] for layer in sp)]
    return ours


@dataclass
class TablesResults(Results):
    tables: dict  # section -> 000's (and 001's) printed cells beside ours (``tables.reference_table``)


SECTIONS = {"II": ([("000", "II"), ("001", "1")], {}), "III": ([("000", "III")], {}),
            "IV": ([("000", "IV"), ("001", "5")], {}), "V": ([("000", "V"), ("001", "4")], {"missing": "see the chapter"}),
            "VI": ([("000", "VI"), ("001", "6")], {})}  # 000's table -> the tables printing it, and options


def results(p: Params, store=None) -> TablesResults:
    from ..report.tables import reference_table
    e = entries(stages(p, store), store)
    runs = {row: e(specs) for row, specs in _specs(p).items()}
    ours = cells(runs)
    return TablesResults({"Tables II-VI": [x for es in runs.values() for x in es]}, {},
                         {name: reference_table(printed, ours, **kw) for name, (printed, kw) in SECTIONS.items()})

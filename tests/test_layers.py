"""Imports never point upward (issue 27): each module of the library imports only modules of its own layer or
below, at the top of the file or inside a function."""
import ast
from pathlib import Path

import mcmia_lib

PACKAGE = Path(mcmia_lib.__file__).parent
# Lowest first. A module not listed belongs to its package's layer (``defenses/dp.py`` is ``defenses``).
LAYERS = [
    {"paths", "threads", "store", "metrics", "data", "report.references"},  # files, arrays, data, the papers' values
    {"models", "train", "defenses", "attacks"},  # networks, the training loop, defenses and attacks
    {"engine", "weights"},  # the compute-and-store path
    {"runner", "loo", "sparsity", "inversion"},  # the kinds of entries
    {"experiments"},  # spec builders
    {"report.verdicts", "report.tables", "report.book", "report", "claims", "plots"},  # what chapters report
    {"chapters"},  # what each chapter computes and shows
    {"grid"},  # computing a chapter's entries
    {"cli", "__main__"},
]


def layer_of(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        for i, names in enumerate(LAYERS):
            if ".".join(parts[:n]) in names:
                return i
    raise AssertionError(f"module {module} is in no layer of tests/test_layers.py; add it")


def imported(path: Path, module: str) -> set[str]:
    """The package modules ``path`` imports (relative or absolute), anywhere in the file."""
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("mcmia_lib"):
                target = node.module[len("mcmia_lib"):].lstrip(".")
            else:
                continue
            names = [f"{target}.{a.name}" if target else a.name for a in node.names]
            out |= {n for n in names if (PACKAGE / (n.replace(".", "/") + ".py")).exists()
                    or (PACKAGE / n.replace(".", "/")).is_dir()} or ({target} if target else set())
        elif isinstance(node, ast.Import):
            out |= {a.name[len("mcmia_lib."):] for a in node.names if a.name.startswith("mcmia_lib.")}
    return {m for m in out if m}


def test_imports_never_point_upward():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if not module:
            continue
        own = layer_of(module)
        for target in imported(path, module):
            if layer_of(target) > own:
                upward.append(f"{module} -> {target}")
    assert not upward, upward

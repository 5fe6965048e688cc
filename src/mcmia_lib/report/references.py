"""The papers' values (``data/reference/``, each with paper, table and row) and saved benchmark runs
(``data/benchmarks/``). Every number a chapter prints comes from a stored result or from here, never typed by
hand."""
from __future__ import annotations

import json

import yaml

from ..paths import REPO_ROOT


REFERENCE_DIR = REPO_ROOT / "data" / "reference"
BENCHMARK_DIR = REPO_ROOT / "data" / "benchmarks"
# How the papers' tables name data sets and networks (the rows of data/reference/), for every chapter.
ROW_NAMES = {"mnist": "MNIST", "fashion_mnist": "F-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
             "vgg16": "VGG16", "mobilenetv2": "MobileNetV2", "resnet18": "ResNet-18"}
PAPER_FILES = {"000": "000_9e578854f912c572.txt", "001": "001_b208a0acef829e4a.txt",
               "002": "002_db679f49b52551a9.txt", "004": "004_6873c2a771daf7e3.txt"}
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

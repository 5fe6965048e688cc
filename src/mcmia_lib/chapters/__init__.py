"""The chapters: one module per notebook of ``notebooks/`` (DESIGN.md, "chapters/").

Each module declares ``Params``, a frozen dataclass whose fields are exactly the notebook's parameters (its
``parameters`` cell and ``params/<notebook>/{smoke,cpu,paper}.yaml``). A field's annotation is its declared
type (``int``, ``float``, ``bool``, ``str``, a ``Literal`` of words, ``list[...]``, ``dict[..., ...]``, a
nested dataclass for a mapping with fixed keys, ``... | None`` where null is allowed) and its helper its range
(``count``, ``epoch_count``, ``batch``, ``seed_list``, ``one_seed``, ``number``, ``fraction``, ``width_factor``,
``word``, ``plain``; the range of a list or mapping of numbers applies to each number).
``Params.validate(values)`` checks a whole resolved parameter dict against them before anything runs and raises
``ParameterError`` with one line naming the parameter, what it expects and what it got (a long value cut to
about 80 characters); ``Params.relations`` adds the checks that involve several parameters (e.g. ``n_canary``
≤ ``n_pool``). In a nested mapping, a field with a default may be absent (it is then None in the instance).
``load_yaml`` reads profile files and ``-p`` values (``1e-3`` is a number there, as in YAML 1.2).

Each module also says what the chapter computes and what it shows (issue 27):
- ``stages(p, store)`` yields the store entries the chapter needs, stage by stage (a later stage may read the
  entries of an earlier one, e.g. DP-SGD's clipping norm chosen on stored validation accuracies): what
  ``mcmia grid`` computes;
- ``results(p, store)`` returns the tables, arrays and values the notebook shows. It reads entries only through
  ``Entries`` built from ``stages`` (``entries``), so a number on the page comes from a named entry, and
  ``tests/test_chapters.py`` checks that it reads every entry ``stages`` names.
A notebook is its parameter cell (``profile`` and ``overrides``), ``p = chapters.read(...)``,
``r = <chapter>.results(p)``, prose, tables and figures.

``read(name, profile, overrides)`` is a chapter's parameters at a profile (``params/<name>/<profile>.yaml``);
``params_class(name)`` and ``module(name)`` are the registry. This package imports neither torch nor the
library's lower half at import time (the CLI checks parameters before anything heavy loads); the modules'
``stages`` and ``results`` import what they use.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import re
import types
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any, Iterator, Literal

import yaml

NAMES = ("comparison", "dp_regularization", "mcmia_cifar10", "mcmia_lenet5", "mcmia_tables", "mnist_lenet5_baseline",
         "quickstart", "sparsity", "strong_attacks")
Profile = Literal["smoke", "cpu", "paper"]
# The library's names (data.DATASETS, models.MODELS, train.OPTIMIZERS; tests/test_params.py checks them), kept
# here so that checking parameters does not import torch.
Dataset = Literal["mnist", "fashion_mnist", "cifar10", "cifar100", "digits"]
Model = Literal["lenet5", "mlp", "cifar_cnn", "vgg16", "mobilenetv2", "resnet18", "resnet20", "lomurno_cnn",
                "fastnet", "fastnet_gn"]
Optimizer = Literal["sgd", "adam"]

# Training images per data set (data.EXPECTED; digits: scikit-learn's 1,797 split in half), kept here so that
# checking parameters does not import torch. tests/test_params.py checks that they agree with data.py.
TRAIN_SIZE = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000, "cifar100": 50000, "digits": 898}
TEST_SIZE = {"mnist": 10000, "fashion_mnist": 10000, "cifar10": 10000, "cifar100": 10000, "digits": 899}

# Caps on sizes, so that a typo cannot start unbounded work: the papers train at most 300 epochs, their attacks
# 100 epochs; ten thousand is over 30 times that, and finite.
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds
MAX_WIDTH = 8.0  # width multiplier of a network: 8x the printed widths is far beyond what a chapter runs
MAX_COUNT = 1_000_000  # any other count (bootstrap draws, reference models ...)
SHOW = 80  # characters of a value echoed in a message


class ParameterError(ValueError):
    """A parameter's value is not what its chapter declares. ``name``: the parameter (``table_i.nn_epochs``,
    ``seeds[1]`` for a part of one); ``top``: the parameter of the chapter it belongs to."""

    def __init__(self, name: str, problem: str):
        self.name, self.problem = name, problem
        self.top = name.split(".")[0].split("[")[0]
        super().__init__(f"{name}: {problem}")


@dataclass(frozen=True)
class Range:
    """The declared range of a parameter (of each number in it, for a list or mapping of numbers)."""

    min: float | None = None  # inclusive lower bound
    gt: float | None = None  # exclusive lower bound
    max: float | None = None  # inclusive upper bound
    lt: float | None = None  # exclusive upper bound
    why: str = ""  # the reason for the upper bound, shown when it is exceeded
    nonempty: bool = False  # a list: at least one item
    distinct: bool = False  # a list: no item twice

    def bounds(self) -> str:
        """The bounds in words ("" when none): ">= 1 and <= 10000 (at most 10,000 epochs)"."""
        parts = ([f">= {_n(self.min)}"] if self.min is not None else []) + (
            [f"> {_n(self.gt)}"] if self.gt is not None else []) + (
            [f"<= {_n(self.max)}" + (f" ({self.why})" if self.why else "")] if self.max is not None else []) + (
            [f"< {_n(self.lt)}"] if self.lt is not None else [])
        return " and ".join(parts)

    def problem(self, v) -> str | None:
        if self.lt is not None and (self.min is not None or self.gt is not None):  # an interval such as [0, 1)
            lo = f"[{_n(self.min)}" if self.min is not None else f"({_n(self.gt)}"
            if not ((self.min is None or v >= self.min) and (self.gt is None or v > self.gt) and v < self.lt):
                return f"must be in {lo}, {_n(self.lt)}), got {show(v)}"
            return None
        if self.min is not None and not v >= self.min:
            return f"must be >= {_n(self.min)}, got {show(v)}"
        if self.gt is not None and not v > self.gt:
            return f"must be > {_n(self.gt)}, got {show(v)}"
        if self.max is not None and not v <= self.max:
            return f"must be <= {_n(self.max)}{f' ({self.why})' if self.why else ''}, got {show(v)}"
        if self.lt is not None and not v < self.lt:
            return f"must be < {_n(self.lt)}, got {show(v)}"
        return None


def _n(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _declare(rng: Range, default=MISSING) -> Any:
    return field(default=default, metadata={"range": rng})


def count(min: int = 0, max: int = MAX_COUNT, why: str = "", default=MISSING, nonempty: bool = False,
          distinct: bool = False) -> Any:
    """A whole number in [min, max] (``max``: what the chapter can run; ``why`` says so), or a list of them
    (``nonempty``: at least one; ``distinct``: none twice)."""
    return _declare(Range(min=min, max=max, why=why, nonempty=nonempty, distinct=distinct), default)


def epoch_count(min: int = 1, default=MISSING) -> Any:
    """A number of epochs in [min, ``MAX_EPOCHS``]."""
    return count(min, MAX_EPOCHS, f"at most {MAX_EPOCHS:,} epochs", default)


def batch(default=MISSING) -> Any:
    """A batch size in [1, ``MAX_BATCH``]."""
    return count(1, MAX_BATCH, default=default)


def seed_list(default=MISSING) -> Any:
    """A list of seeds: at least one, distinct, each a whole number in [0, 2**32 - 1]."""
    return _declare(Range(min=0, max=MAX_SEED, why="2**32 - 1", nonempty=True, distinct=True), default)


def one_seed(default=MISSING) -> Any:
    """One seed: a whole number in [0, 2**32 - 1]."""
    return _declare(Range(min=0, max=MAX_SEED, why="2**32 - 1"), default)


def number(min: float | None = None, gt: float | None = None, max: float | None = None, why: str = "",
           default=MISSING, nonempty: bool = False) -> Any:
    """A finite number with the given bounds (``gt``: strictly greater), or a list of them (``nonempty``: at
    least one)."""
    return _declare(Range(min=min, gt=gt, max=max, why=why, nonempty=nonempty), default)


def fraction(min: float | None = 0.0, gt: float | None = None, lt: float = 1.0, default=MISSING) -> Any:
    """A number in [0, 1) (or (gt, lt) / [min, lt) as given)."""
    return _declare(Range(min=None if gt is not None else min, gt=gt, lt=lt), default)


def width_factor(default=MISSING) -> Any:
    """A width multiplier of a network: in (0, ``MAX_WIDTH``]."""
    return number(gt=0, max=MAX_WIDTH, why=f"{MAX_WIDTH:g}x the printed widths", default=default)


def word(default=MISSING, nonempty: bool = False, distinct: bool = False) -> Any:
    """A word (its choices are the ``Literal`` of the annotation), or a list of them."""
    return _declare(Range(nonempty=nonempty, distinct=distinct), default)


def plain(default=MISSING) -> Any:
    """No range beyond the declared type (flags, mappings of declared fields)."""
    return _declare(Range(), default)


# ------------------------------------------------------------------------------------------------ showing values

class HugeInteger:
    """A whole number with more digits than Python converts to and from text (``sys.get_int_max_str_digits``),
    as read from YAML by ``load_yaml``: out of every declared range, and named by its length, not its digits."""

    def __init__(self, text: str):
        self.digits = sum(c.isdigit() for c in text)
        self.negative = text.lstrip().startswith("-")

    def __repr__(self):
        return f"a {'negative ' if self.negative else ''}whole number of {self.digits:,} digits"


def show(value, limit: int = SHOW) -> str:
    """``repr(value)`` cut to about ``limit`` characters with "…"; a whole number too long to print whole is
    named by its digit count (Python refuses to format one, and it would flood the message)."""
    out: list[str] = []
    budget = [limit + 1]

    def put(s: str) -> bool:
        out.append(s[: budget[0]])
        budget[0] -= len(s)
        return budget[0] > 0

    def walk(v) -> bool:
        if isinstance(v, HugeInteger):
            return put(repr(v))
        if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 4 * limit:
            return put(f"a whole number of about {int(v.bit_length() * math.log10(2)) + 1:,} digits")
        if isinstance(v, (list, tuple)):
            if not put("[" if isinstance(v, list) else "("):
                return False
            for i, x in enumerate(v):
                if (i and not put(", ")) or not walk(x):
                    return False
            return put("]" if isinstance(v, list) else ")")
        if isinstance(v, dict):
            if not put("{"):
                return False
            for i, (k, x) in enumerate(v.items()):
                if (i and not put(", ")) or not walk(k) or not put(": ") or not walk(x):
                    return False
            return put("}")
        return put(repr(v) if not isinstance(v, str) or len(v) <= limit else repr(v[: limit + 1]))

    walk(value)
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cut(text: str, limit: int = SHOW) -> str:
    """``text`` cut to ``limit`` characters with "…"."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(value) -> str:
    """The kind of a value, in words."""
    if isinstance(value, HugeInteger):
        return "a whole number"
    return {str: "a string", int: "a whole number", float: "a number", bool: "a boolean", list: "a list",
            dict: "a mapping", type(None): "null"}.get(type(value), type(value).__name__)


# ------------------------------------------------------------------------------------------------ reading YAML

class Loader(yaml.SafeLoader):
    """YAML 1.1 as PyYAML reads it, except that ``1e-3`` (no dot) is a number as in YAML 1.2 and JSON, and a
    whole number too long for Python to convert is read as a ``HugeInteger`` (refused by every range)."""


Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _construct_int(loader, node):
    try:
        return yaml.SafeLoader.construct_yaml_int(loader, node)
    except ValueError:  # more digits than int() converts
        return HugeInteger(loader.construct_scalar(node))


Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_yaml(text: str):
    """Parse ``text`` (a profile file or a ``-p`` value) with ``Loader``."""
    return yaml.load(text, Loader=Loader)


# ------------------------------------------------------------------------------------------------ checking

WORDS = {int: "a whole number (e.g. 150)", float: "a number (e.g. 0.001)", bool: "true or false",
         str: "a word", list: "a list (e.g. [0, 1])", dict: "a mapping (e.g. {a: 1})"}


def expected(tp) -> str:
    """What a value of declared type ``tp`` looks like, in words."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(expected(a) for a in args if a is not type(None)) + " or null"
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys among " + ", ".join(f.name for f in dataclasses.fields(tp))
    return WORDS.get(origin or tp, getattr(tp, "__name__", str(tp)))


def check(name: str, value, tp, rng: Range) -> Any:
    """``value`` checked against the declared type ``tp`` and range ``rng`` (nested dataclasses built from
    their mappings); raises ``ParameterError`` naming ``name``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):  # T | None
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        tp, origin, args = inner[0], typing.get_origin(inner[0]), typing.get_args(inner[0])
    if isinstance(value, HugeInteger):  # out of every range: say which one, not its digits
        if tp is int and rng.bounds():
            raise ParameterError(name, f"must be {rng.bounds()}, got {show(value)}")
        raise ParameterError(name, f"expected {'a finite number' if tp is float else expected(tp)}, got {show(value)}")
    if origin is Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            raise ParameterError(name, f"expected {expected(tp)}, got {show(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParameterError(name, f"expected {expected(tp)}, got {show(value)} ({describe(value)})")
        return value
    if tp in (int, float):
        ok = type(value) is int or (tp is float and type(value) is float)
        if not ok:
            raise ParameterError(name, f"expected {expected(tp)}, got {show(value)} ({describe(value)})")
        if tp is float:
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an int too large for a float
                finite = False
            if not finite:
                raise ParameterError(name, f"expected a finite number, got {show(value)}")
        problem = rng.problem(value)
        if problem:
            raise ParameterError(name, problem)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParameterError(name, f"expected {expected(tp)}, got {show(value)} ({describe(value)})")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ParameterError(name, f"expected {expected(tp)}, got {show(value)} ({describe(value)})")
        if rng.nonempty and not value:
            raise ParameterError(name, "expected at least one item, got []")
        inner = Range(rng.min, rng.gt, rng.max, rng.lt, rng.why)  # list-level conditions apply once
        items = [check(f"{name}[{i}]", v, args[0], inner) for i, v in enumerate(value)]
        if rng.distinct:
            seen = []
            for v in items:
                if v in seen:
                    raise ParameterError(name, f"must not repeat an item, got {show(v)} twice in {show(value)}")
                seen.append(v)
        return items
    if origin is dict:
        if not isinstance(value, dict):
            raise ParameterError(name, f"expected {expected(tp)}, got {show(value)} ({describe(value)})")
        out = {}
        for k, v in value.items():
            try:
                check(name, k, args[0], Range())
            except ParameterError:
                raise ParameterError(name, f"key {show(k)}: expected {expected(args[0])}") from None
            out[k] = check(f"{name}.{k}", v, args[1], rng)
        return out
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ParameterError(name, f"expected {expected(tp)}, got {show(value)} ({describe(value)})")
        return _build(tp, value, prefix=f"{name}.")
    raise TypeError(f"{name}: undeclared type {tp!r}")  # a mistake in a Params declaration


def _fields(cls) -> tuple[dict, dict]:
    hints = typing.get_type_hints(cls, include_extras=False)
    return {f.name: f for f in dataclasses.fields(cls)}, hints


def _build(cls, values: dict, prefix: str = ""):
    """An instance of dataclass ``cls`` from ``values`` (keys among its fields; those without a default
    required), each checked."""
    fields, hints = _fields(cls)
    for k in values:
        if k not in fields:
            raise ParameterError(prefix.rstrip(".") or "parameters",
                                 f"unknown key {show(k, 40)}; expected keys among {', '.join(fields)}")
    checked = {k: check(f"{prefix}{k}", v, hints[k], fields[k].metadata.get("range", Range()))
               for k, v in values.items()}
    for k, f in fields.items():
        if k not in values and f.default is MISSING and f.default_factory is MISSING:
            raise ParameterError(f"{prefix}{k}", f"missing; expected {expected(hints[k])}")
    return cls(**checked)


class ChapterParams:
    """Base of every chapter's ``Params``: ``validate`` and ``relations``."""

    @classmethod
    def validate(cls, values: dict):
        """The checked ``Params`` of a whole resolved parameter dict (every parameter of the notebook);
        ``ParameterError`` (one line) at the first problem."""
        p = _build(cls, values)
        for name, problem in cls.relations(p):
            raise ParameterError(name, problem)
        return p

    @classmethod
    def relations(cls, p) -> Iterator[tuple[str, str]]:
        """(parameter, problem) for each condition between parameters that ``p`` breaks."""
        return iter(())

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def members_fit(name: str, n_target: int | None, datasets) -> Iterator[tuple[str, str]]:
    """``n_target`` members fit in the training set of each of ``datasets`` (and at least 2)."""
    for d in datasets:
        if n_target is not None and d in TRAIN_SIZE and n_target > TRAIN_SIZE[d]:
            yield name, f"must be <= {TRAIN_SIZE[d]} (the training images of {d}), got {show(n_target)}"


def params_class(name: str) -> type[ChapterParams]:
    """The ``Params`` class of chapter (notebook) ``name``."""
    if name not in NAMES:
        raise KeyError(f"no chapter {name!r}; chapters: {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}").Params


def validate(name: str, values: dict) -> ChapterParams:
    """``params_class(name).validate(values)``."""
    return params_class(name).validate(values)


def module(name: str) -> types.ModuleType:
    """The module of chapter ``name`` (``Params``, ``stages``, ``results``)."""
    if name not in NAMES:
        raise KeyError(f"no chapter {name!r}; chapters: {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")


def params_file(name: str, profile: str):
    from ..paths import REPO_ROOT
    return REPO_ROOT / "params" / name / f"{profile}.yaml"


def read(name: str, profile: str, overrides: dict | None = None) -> ChapterParams:
    """Chapter ``name``'s checked ``Params`` at ``profile``: ``params/<name>/<profile>.yaml``, then ``overrides``
    (name -> value, as ``mcmia run -p`` gives them). ``ParameterError`` (one line) at the first problem."""
    values = load_yaml(params_file(name, profile).read_text()) or {}
    values = {**values, **(overrides or {}), "profile": profile}
    return validate(name, values)


def as_dict(p) -> dict:
    """The parameters as a plain dict, for the library functions that take one; a nested mapping leaves out its
    optional keys that are None (absent in the profile file), as the file wrote it."""
    def plain_value(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain_value(getattr(v, f.name)) for f in dataclasses.fields(v)
                    if not (getattr(v, f.name) is None and f.default is None)}
        if isinstance(v, dict):
            return {k: plain_value(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain_value(x) for x in v]
        return v
    return {f.name: plain_value(getattr(p, f.name)) for f in dataclasses.fields(p)}


class Entries:
    """The store entries of a chapter's stages, by spec (``entries``): ``e[spec]`` is the stored entry of a spec
    the stages name (a ``KeyError`` names any other); ``read`` holds the keys asked for, which the chapters'
    test compares with the stages."""

    def __init__(self, by_key: dict):
        self._by_key = by_key
        self.read: set[str] = set()

    def __getitem__(self, spec):
        from .. import engine
        k = engine.key(spec)
        if k not in self._by_key:
            raise KeyError(f"store entry {k} ({type(spec).__name__}) is not named by the chapter's stages")
        self.read.add(k)
        return self._by_key[k]

    def __call__(self, specs) -> list:
        """The entries of ``specs``, in order."""
        return [self[s] for s in specs]

    def keys(self) -> list[str]:
        return list(self._by_key)


def entries(stages: Iterator[list], store=None) -> Entries:
    """Every entry ``stages`` names, each loaded (computed first when missing: the smoke profile computes in the
    notebook's kernel; ``mcmia run`` at other profiles computes with ``mcmia grid`` first). A stage is asked for
    only once the entries of the one before are stored."""
    from .. import engine
    by_key = {}
    for stage in stages:
        for spec in stage:
            k = engine.key(spec)
            if k not in by_key:
                by_key[k] = engine.run(spec, store)
                by_key[k].phases = engine.phases(spec)
    return Entries(by_key)


@dataclass
class Results:
    """What a chapter shows. ``sources``: the store entries behind each of its tables or figures (by name), from
    which the provenance tables list the hardware, compute and store keys; ``glue``: the values its prose cites
    (``{glue:text}`name```)."""

    sources: dict
    glue: dict

    @property
    def entries(self) -> list:
        """Every entry behind the chapter, once each, in order."""
        seen = {}
        for es in self.sources.values():
            for e in es:
                seen.setdefault(e.key, e)
        return list(seen.values())

    def provenance(self):
        """Hardware, compute and last finish of the chapter's entries (``tables.provenance_table``)."""
        from ..report.tables import provenance_table
        return provenance_table(self.entries)

    def store_keys(self):
        """Each table or figure and the store keys of the entries behind it, whole (a styled table: pandas would cut
        long cells); ``data/results/<key>/spec.json`` holds each entry's settings."""
        import pandas as pd
        table = pd.DataFrame([{"shown in": name, "entries": len(es), "store keys": " ".join(sorted({e.key for e in es}))}
                              for name, es in self.sources.items()]).set_index("shown in")
        return table.style.set_caption("Store keys: data/results/&lt;key&gt;/spec.json holds each entry's settings")

    def publish(self) -> None:
        """Record ``glue`` for the prose."""
        from ..report.book import glue
        for name, value in self.glue.items():
            glue(name, value)

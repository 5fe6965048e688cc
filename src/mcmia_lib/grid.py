"""Each chapter's store entries at a profile, and computing the missing ones as Ray tasks (issue 18).

``chapter_grid(chapter, params)`` yields the chapter's specs in stages: a stage may depend on the entries of
the one before (DP-SGD's clipping norm is chosen on stored validation accuracies before the DP targets are
named). The specs mirror what the chapter's notebook asks ``run`` for; ``tests/test_grid.py`` checks that
every cpu-profile grid is in the committed store, so a grid that names other specs than its chapter fails.

``compute(chapter, params)`` runs the missing entries of each stage as Ray tasks (a local Ray with one task
per core and one torch thread per task by default, an existing cluster with ``address``, one GPU per task
where CUDA is present). A task waits for the task that first trains a weights phase it shares
(``engine.phases``: a pruned target's pretraining is the baseline), so no phase is trained twice; the
per-key locks of ``engine.run`` keep two workers from writing one entry. Killed and restarted, a grid skips
the stored entries and resumes training from the epoch checkpoints. ``plan`` is the dry run: what is stored,
what is missing, and its cost estimated from the stored wall times of similar entries.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from . import engine, loo  # noqa: F401 (loo registers its kind of entry, which stored_costs must know)
from .experiments import (METHODS, clip_candidates, choose_clip, dp_column_spec, gonon_nets, gonon_spec,
                          lomurno_configs, lomurno_spec, mcmia_spec, mcmia_specs, per_model_params, strong_attack_specs,
                          table_i_rows,
                          baseline_probe_spec, lenet5_baseline_spec, quickstart_spec)
from .inversion import InversionSpec
from .report import profile_params
from .runner import weights_path
from .store import Store, canonical
from .train import quiet

_GRIDS: dict[str, tuple[Callable[[dict], Iterator[list]], int]] = {}


def _grid(chapter: str, stages: int = 1):
    def register(fn):
        _GRIDS[chapter] = (fn, stages)
        return fn
    return register


def chapters() -> list[str]:
    return sorted(_GRIDS)


def chapter_grid(chapter: str, params: dict, store: Store | None = None) -> Iterator[list]:
    """The chapter's specs at ``params`` (its profile's parameters), stage by stage; a later stage is named
    only once the entries of the earlier ones are stored (in ``store``, which it reads them from)."""
    if chapter not in _GRIDS:
        raise ValueError(f"no grid for chapter {chapter!r}; chapters with one: {', '.join(chapters())}")
    return _GRIDS[chapter][0](params, store or Store())


@_grid("quickstart")
def _quickstart(p, store):
    yield [quickstart_spec(p, s) for s in p["seeds"]]


@_grid("mnist_lenet5_baseline")
def _lenet5_baseline(p, store):
    yield [baseline_probe_spec(p)] + [lenet5_baseline_spec(p, s, init) for init in p["nn_inits"] for s in p["seeds"]]


def _lenet5_params(p: dict) -> dict:
    return {k: p.get(k) for k in ("dataset", "model", "width", "n_target", "epochs", "pretrain_epochs", "batch_size",
                                  "lr", "optimizer", "rates", "admm_epochs", "retrain_epochs", "rho", "rho_growth",
                                  "minmax_lam", "minmax_steps", "minmax_attack_lr", "nn_epochs")}


@_grid("mcmia_lenet5")
def _mcmia_lenet5(p, store):
    q = _lenet5_params(p)
    yield ([mcmia_spec(q, m, s) for m in METHODS for s in p["seeds"]]
           + [mcmia_spec(q, "pruning", p["seeds"][0], rates=r) for r in p["rate_candidates"]])


def _cifar_params(p: dict) -> dict:
    """The CIFAR chapter's per-model parameters (``per_model_params``), as its notebook builds them."""
    from .data import load_dataset
    common = {k: p.get(k) for k in ("dataset", "n_target", "epochs", "pretrain_epochs", "batch_size", "lr",
                                    "optimizer", "flip", "crop_pad", "admm_epochs", "retrain_epochs", "rho",
                                    "rho_growth", "minmax_lam", "minmax_steps", "minmax_attack_lr", "nn_epochs")}
    ds = load_dataset(p["dataset"])
    chapter = {**common, **{k: p.get(k) for k in ("models", "widths", "compression", "first_rate", "seeds",
                                                   "overrides")}}
    return {m: per_model_params(chapter, m, ds.num_classes, ds.shape) for m in p["models"]}


@_grid("mcmia_cifar10")
def _mcmia_cifar10(p, store):
    params = _cifar_params(p)
    specs = [mcmia_spec(params[m], k, s) for m in p["models"]
             for k in METHODS[:3] + (("pruning+minmax",) if m in p["pmm_models"] else ()) for s in params[m]["seeds"]]
    ablation = p.get("admm_ablation") or {}
    alt = {k: v for k, v in ablation.items() if k not in ("seeds", "models")}
    for m in ablation.get("models", p["models"]) if ablation else ():
        specs += [mcmia_spec({**params[m], **alt}, "pruning", s) for s in params[m]["seeds"] if s in ablation["seeds"]]
    yield specs


@_grid("mcmia_tables")
def _mcmia_tables(p, store):
    yield [s for specs in mcmia_specs(profile_params("mcmia_lenet5", p["profile"]),
                                      profile_params("mcmia_cifar10", p["profile"])).values() for s in specs]


@_grid("dp_regularization", stages=2)
def _dp_regularization(p, store):
    chapter = {k: p.get(k) for k in ("model", "width", "n_target", "epochs", "batch_size", "lr", "momentum",
                                     "curve_subset", "epsilons", "delta", "clip_candidates", "l2", "dropout",
                                     "nn_epochs")}
    yield [v for d in p["datasets"] for v in clip_candidates({**chapter, "dataset": d}).values()]
    clip = {d: choose_clip({**chapter, "dataset": d}, store=store)[0] for d in p["datasets"]}
    spec = lambda d, c, s: lomurno_spec({**chapter, "dataset": d, "max_grad_norm": clip[d]}, c, s)  # noqa: E731
    configs = lomurno_configs(p["epsilons"])
    runs = [spec(d, c, s) for d in p["datasets"] for c in configs for s in p["seeds"]]
    inversions = [InversionSpec(spec(d, c, p["inversion_seed"]), layer, epochs=p["inversion_epochs"],
                                n_train=p["inversion_n_train"], n_val=p["inversion_n_val"], n_test=p["inversion_n_test"])
                  for layer in p["inversion_layers"] for d in p["datasets"] for c in configs]
    t = p["table_i"]
    rows = table_i_rows(t, profile_params("mcmia_lenet5", p["profile"]), profile_params("mcmia_cifar10", p["profile"]),
                        clip, p["delta"])
    table_i = [s for dp_p, mcmia_p in rows.values() for seed in t["seeds"]
               for s in (dp_column_spec(dp_p, seed), mcmia_spec(mcmia_p, "pruning", seed))]
    yield runs + table_i + inversions


@_grid("sparsity")
def _sparsity(p, store):
    yield [gonon_spec(p, net, r) for net in gonon_nets(p) for r in p["runs"]]


@_grid("strong_attacks")
def _strong_attacks(p, store):
    yield [s for specs in strong_attack_specs(p).values() for s in specs]


# -- planning ------------------------------------------------------------------------------------------------

def describe(spec) -> str:
    """A short label for log lines: kind, data set, model or network, defenses, seed or model index."""
    c = canonical(spec)
    target = c.get("target", c)
    dataset = target.get("dataset") or c.get("pool", {}).get("dataset")
    parts = [type(spec).__name__.replace("Spec", ""), dataset, target.get("model"), c.get("layer")]
    if isinstance(c.get("net"), dict):
        parts.append(spec.net.label)
    reg = target.get("regularization", {})
    parts += [d for d, on in (("pruning", "pruning" in target), ("min-max", "minmax" in target),
                              (f"DP ε={target.get('dp', {}).get('target_epsilon')}", "dp" in target),
                              ("L2", "l2_last" in reg), ("dropout", "dropout" in reg)) if on]
    seed = target.get("seed", c.get("run"))
    index = f"model {c['index']}" if "index" in c else None
    return " ".join(str(x) for x in parts + [f"seed {seed}" if seed is not None else None, index] if x)


def _signature(obj):
    """A spec without its seed, run or model index: entries of the same signature cost about the same."""
    if isinstance(obj, dict):
        return {k: _signature(v) for k, v in obj.items() if k not in ("seed", "run", "index")}
    return [_signature(v) for v in obj] if isinstance(obj, list) else obj


def _entry_seconds(result: dict) -> float | None:
    prov = result.get("provenance", {})
    if "seconds_train" in prov:
        return prov["seconds_train"] + prov["seconds_attacks"]
    return prov.get("seconds")


def _coarse(prefix: str, spec: dict) -> str:
    """The (kind, data set, model, defenses) of a canonical spec: entries that cost about the same when no entry
    of the same settings is stored (DP-SGD's per-example gradients cost 2-3x)."""
    target = spec.get("target", spec)
    dataset = target.get("dataset") or spec.get("pool", {}).get("dataset")
    defenses = ",".join(d for d in ("dp", "pruning", "minmax", "regularization") if target.get(d))
    return f"{prefix}|{dataset}|{target.get('model')}|{defenses}"


def stored_costs(store: Store) -> dict[str, list[float]]:
    """Stored wall seconds by spec signature (JSON text) and by ``_coarse`` (kind, data set, model, defenses)."""
    costs: dict[str, list[float]] = {}
    prefixes = engine.prefixes()
    for key in store.keys():
        try:
            spec = json.loads((store.path(key) / "spec.json").read_text())
            seconds = _entry_seconds(json.loads((store.path(key) / "result.json").read_text()))
        except (OSError, ValueError):
            continue
        if seconds is None:
            continue
        costs.setdefault(json.dumps(_signature(spec), sort_keys=True), []).append(seconds)
        prefix = next(p for p in prefixes if key.startswith(p))
        costs.setdefault(_coarse(prefix, spec), []).append(seconds)
    return costs


def estimate(spec, costs: dict[str, list[float]]) -> tuple[float | None, str]:
    """(seconds, how): the median stored wall time of entries that differ only in their seed, else of the
    entries of the same kind, data set, model and defenses, else unknown."""
    c = canonical(spec)
    same = costs.get(json.dumps(_signature(c), sort_keys=True))
    if same:
        return statistics.median(same), "same settings"
    coarse = costs.get(_coarse(engine.kind_of(spec).prefix, c))
    if coarse:
        return statistics.median(coarse), "same kind, data set, model and defenses"
    return None, "no similar entry stored"


@dataclass
class Plan:
    stored: list
    missing: list
    estimates: list  # (seconds or None, how) per missing entry (``estimate``)
    pending: bool  # later stages wait for the missing entries and are not named yet

    @property
    def seconds(self) -> float:
        """Estimated wall seconds of the missing entries that have an estimate."""
        return sum(s for s, _ in self.estimates if s is not None)

    @property
    def unknown(self) -> int:
        """Missing entries without an estimate."""
        return sum(s is None for s, _ in self.estimates)


def plan(chapter: str, params: dict, store: Store | None = None) -> Plan:
    """The dry run: stored and missing specs, stage by stage until a stage has missing entries; nothing is
    computed or written."""
    store = store or Store()
    costs = stored_costs(store)
    stored, missing, pending = [], [], False
    for i, stage in enumerate(chapter_grid(chapter, params, store)):
        for spec in stage:
            (stored if engine.is_stored(spec, store) else missing).append(spec)
        if missing:
            pending = i + 1 < _GRIDS[chapter][1]
            break
    return Plan(stored, missing, [estimate(s, costs) for s in missing], pending)


# -- computing -----------------------------------------------------------------------------------------------

def _task(spec, store_root: str, *after):
    """One Ray task: the entry of ``spec`` through the one compute-and-store path (``after``: the tasks that
    first train its shared phases, resolved by Ray before this one starts)."""
    t0 = time.perf_counter()
    e = engine.run(spec, Store(store_root))
    return e.key, e.result, e.arrays, time.perf_counter() - t0


def _warm() -> int:
    """A no-op task that starts a Ray worker and imports the library in it, so the first entry does not pay it."""
    from . import runner  # noqa: F401 (torch and the library)
    time.sleep(0.5)  # long enough for the other warm-up tasks to start on their own workers
    return os.getpid()


def _log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


def check_workers(workers: int | None, address: str | None) -> None:
    """A local Ray takes 1 to this machine's cores workers (one task per core, one torch thread per task)."""
    cores = os.cpu_count() or 1
    if address is None and workers is not None and not 1 <= workers <= cores:
        raise ValueError(f"--workers {workers}: this machine has {cores} cores; choose 1 to {cores} "
                         "(one task per core, one torch thread per task)")


class RayPool:
    """A Ray session for computing entries: local with ``workers`` CPUs (default and maximum: the machine's
    cores), or the cluster at ``address``; one CPU and, where CUDA is present, one GPU per task. Use it as a
    context manager: Ray is shut down on leaving."""

    def __init__(self, workers: int | None = None, address: str | None = None, store: Store | None = None):
        check_workers(workers, address)
        self.store = store or Store()
        self.workers, self.address = (workers or os.cpu_count() or 1) if address is None else None, address

    def __enter__(self):
        import ray
        import torch
        env = {"MCMIA_QUIET": "1", "MCMIA_STORE": str(self.store.root.resolve()),
               "MCMIA_WEIGHTS": str(weights_path("x").parent.resolve())}
        if "MCMIA_THREADS" in os.environ:
            env["MCMIA_THREADS"] = os.environ["MCMIA_THREADS"]
        ray.init(address=self.address, num_cpus=self.workers, include_dashboard=False,
                 runtime_env={"env_vars": env}, logging_level="ERROR", log_to_driver=True)
        self.remote = ray.remote(num_cpus=1, num_gpus=1 if torch.cuda.is_available() else 0, max_retries=0)(_task)
        if self.workers:  # a local Ray: start its workers now
            warm = ray.remote(num_cpus=1)(_warm)
            ray.get([warm.remote() for _ in range(self.workers)])
        return self

    def __exit__(self, *exc):
        import ray
        ray.shutdown()

    def compute(self, specs, desc: str = "grid") -> list[tuple[object, str]]:
        """Compute the missing entries of ``specs`` as Ray tasks; return the failures as (spec, error)."""
        import ray
        from tqdm import tqdm
        root = str(self.store.root.resolve())
        first_trainer, tasks, failures = {}, {}, []
        for spec in (s for s in specs if not engine.is_stored(s, self.store)):
            phases = engine.phases(spec)
            after = {first_trainer[k] for k in phases if k in first_trainer}
            ref = self.remote.remote(spec, root, *after)
            for k in phases:
                if not weights_path(k).exists():
                    first_trainer.setdefault(k, ref)
            tasks[ref] = spec
        running = list(tasks)
        with tqdm(total=len(running), desc=desc, unit="task", disable=quiet()) as bar:
            while running:
                (ref,), running = ray.wait(running, num_returns=1)
                spec = tasks[ref]
                try:
                    key, result, arrays, seconds = ray.get(ref)
                except Exception as exc:  # the task's own error, or one of the tasks it waited for
                    failures.append((spec, str(exc).strip().splitlines()[-1]))
                    _log(f"failed  {describe(spec)}: {failures[-1][1]}")
                else:
                    if not self.store.has(key):  # computed on another machine of a cluster
                        self.store.save(key, spec, result, arrays)
                    _log(f"stored  {key} {describe(spec)} ({seconds:.0f} s)")
                bar.update()
        return failures


def compute(chapter: str, params: dict, workers: int | None = None, address: str | None = None,
            store: Store | None = None) -> list[tuple[object, str]]:
    """Compute the chapter's missing entries as Ray tasks, stage by stage; return the failures as (spec,
    error) (a stage with failures ends the grid: later stages depend on it)."""
    with RayPool(workers, address, store) as pool:
        for stage in chapter_grid(chapter, params, pool.store):
            failures = pool.compute(stage, desc=f"{chapter} grid")
            if failures:
                return failures
    return []

"""Each chapter's store entries at a profile, and computing the missing ones as Ray tasks (issue 18).

``chapter_grid(chapter, params)`` yields the chapter's specs in stages: a stage may depend on the entries of
the one before (DP-SGD's clipping norm is chosen on stored validation accuracies before the DP targets are
named). The specs are the chapter module's ``stages``, which its ``results`` reads through (``chapters.entries``);
``tests/test_grid.py`` checks that every cpu-profile grid is in the committed store.

``compute(chapter, params)`` runs the missing entries of each stage as Ray tasks (a local Ray with one task
per core and one torch thread per task by default, an existing cluster with ``address``, one GPU per task
where CUDA is present). A task waits for the task that first trains a weights phase it shares
(``engine.phases``: a pruned target's pretraining is the baseline), so no phase is trained twice; the
per-key locks of ``engine.run`` keep two workers from writing one entry. Killed and restarted, a grid skips
the stored entries and resumes training from the epoch checkpoints; an entry that does not read back is not
stored (``Store.intact``): the grid moves it aside and computes it again. SIGINT and SIGTERM cancel the tasks
in flight and shut Ray down (``Interrupted``). ``plan`` is the dry run: what is stored, what is missing, and
its cost estimated from the stored wall times of entries of the same settings, else of similar entries scaled
by epochs × examples (``estimate``).
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import signal
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from . import chapters as declared  # the chapters package; `chapters()` below lists those with a grid
from . import engine
from .store import Store, canonical
from .weights import weights_path
from .train import quiet


def chapters() -> list[str]:
    """The chapters with a grid: every chapter (``chapters.NAMES``)."""
    return sorted(declared.NAMES)


def chapter_grid(chapter: str, params: dict, store: Store | None = None) -> Iterator[list]:
    """The chapter's specs at ``params`` (its profile's parameters), stage by stage (its module's ``stages``); a
    later stage is named only once the entries of the earlier ones are stored (in ``store``, which it reads them
    from)."""
    if chapter not in declared.NAMES:
        raise ValueError(f"no grid for chapter {chapter!r}; chapters with one: {', '.join(chapters())}")
    return declared.module(chapter).stages(declared.validate(chapter, params), store or Store())


def stage_count(chapter: str) -> int:
    return getattr(declared.module(chapter), "STAGES", 1)


# -- planning ------------------------------------------------------------------------------------------------

def describe(spec) -> str:
    """A short label for log lines: kind, data set, model or network, defenses, seed or model index."""
    c = canonical(spec)
    target = c.get("target", c)
    dataset = target.get("dataset") or c.get("pool", {}).get("dataset")
    parts = [c.get("__type__", type(spec).__name__).replace("Spec", ""), dataset, target.get("model"), c.get("layer")]
    if isinstance(c.get("net"), dict):
        net = c["net"]
        parts.append(net.get("kind") + "".join(f" {k}={net[k]}" for k in ("segments", "factors", "prunings") if k in net))
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
        return prov["seconds_train"] + prov.get("seconds_attacks", 0.0)
    return prov.get("seconds")


def _coarse(prefix: str, spec: dict) -> str:
    """The (kind, data set, model, defenses, attacks) of a canonical spec: entries whose cost scales with their
    size (``size``) when no entry of the same settings is stored (DP-SGD's per-example gradients cost 2-3x,
    the NN attack trains a network of its own)."""
    target = spec.get("target", spec)
    dataset = target.get("dataset") or spec.get("pool", {}).get("dataset")
    defenses = ",".join(d for d in ("dp", "pruning", "minmax", "regularization") if target.get(d))
    attacks = ",".join(a for a in ("nn_attack", "tfp_attack") if target.get(a))
    return f"{prefix}|{dataset}|{target.get('model')}|{defenses}|{attacks}"


@functools.lru_cache(maxsize=None)
def _dataset_sizes(name: str) -> tuple[int, int] | None:
    """(training, test) images of a data set: the published sizes, else those of the loaded copy."""
    from .data import EXPECTED, load_dataset
    if name in EXPECTED:
        return EXPECTED[name][:2]
    try:
        ds = load_dataset(name)
    except Exception:
        return None
    return len(ds.y_train), len(ds.y_test)


def _epochs(obj) -> int:
    """Every epoch count of a canonical spec, summed (training phases, the NN attack, a decoder)."""
    if isinstance(obj, dict):
        return sum(v if k.endswith("epochs") and type(v) is int else _epochs(v) for k, v in obj.items())
    return sum(_epochs(v) for v in obj) if isinstance(obj, list) else 0


def size(spec: dict) -> float | None:
    """epochs × examples of a canonical spec: its epochs summed (``_epochs``) times the examples an epoch
    passes over, the training examples (``n_target``, ``n_train``, ``part`` or ``n_pool``; the whole training
    set when unset) plus the test images its curves evaluate (``curve_subset``, else the test set), which
    dominate a small run's epochs. None when unknown."""
    target = spec.get("target", spec)
    pool = spec.get("pool", {})
    dataset = target.get("dataset") or pool.get("dataset")
    sizes = _dataset_sizes(dataset) if isinstance(dataset, str) else None
    n = next((d[k] for d in (spec, target, pool) for k in ("n_target", "n_train", "part", "n_pool")
              if type(d.get(k)) is int), sizes[0] if sizes else None)
    evaluated = target.get("train", {}).get("curve_subset") or (sizes[1] if sizes else 0)
    epochs = _epochs(spec)
    return float(epochs * (n + evaluated)) if n and epochs else None


def stored_costs(store: Store) -> dict[str, list]:
    """Stored wall seconds by spec signature (JSON text), and (size, seconds) by ``_coarse`` (kind, data set,
    model, defenses, attacks)."""
    costs: dict[str, list] = {}
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
        n = size(spec)
        if n:
            costs.setdefault(_coarse(prefix, spec), []).append((n, seconds))
    return costs


def estimate(spec, costs: dict[str, list]) -> tuple[float | None, str]:
    """(seconds, how): the median stored wall time of entries that differ only in their seed (the same
    profile and size), else that of the entries of the same kind, data set, model, defenses and attacks
    nearest in size, scaled by the ratio of the sizes (epochs × examples, ``size``), else unknown."""
    c = canonical(spec)
    same = costs.get(json.dumps(_signature(c), sort_keys=True))
    if same:
        return statistics.median(same), "same settings"
    n = size(c)
    similar = costs.get(_coarse(engine.kind_of(spec).prefix, c))
    if n and similar:
        nearest = min(abs(math.log(n / m)) for m, _ in similar)
        near = [(m, seconds) for m, seconds in similar if abs(math.log(n / m)) <= nearest + 1e-9]
        ratio = statistics.median(n / m for m, _ in near)
        return (statistics.median(seconds * n / m for m, seconds in near),
                f"a similar entry scaled by epochs × examples, ×{ratio:.3g}")
    return None, "no similar entry stored"


@dataclass
class Plan:
    stored: list
    missing: list
    estimates: list  # (seconds or None, how) per missing entry (``estimate``)
    pending: bool  # later stages wait for the missing entries and are not named yet
    damaged: list = field(default_factory=list)  # missing because their entry is damaged (``Store.problem``)

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
            pending = i + 1 < stage_count(chapter)
            break
    damaged = [s for s in missing if store.has(engine.key(s))]  # there, but it does not read back
    return Plan(stored, missing, [estimate(s, costs) for s in missing], pending, damaged)


def stale(specs, store: Store | None = None) -> list[tuple[object, list[str]]]:
    """The stored entries of ``specs`` computed by source that has changed since (``engine.stale_components``),
    with the components that changed."""
    store = store or Store()
    out = []
    for spec in specs:
        result = json.loads((store.path(engine.key(spec)) / "result.json").read_text())
        changed = engine.stale_components(type(spec).__name__, result)
        if changed:
            out.append((spec, changed))
    return out


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


class Interrupted(KeyboardInterrupt):
    """A grid ended by SIGINT or SIGTERM (``signum``): ``stored`` entries it stored, ``in_flight`` tasks it
    cancelled (rerunning it resumes them)."""

    def __init__(self, signum: int, stored: int = 0, in_flight: int = 0):
        super().__init__(signum, stored, in_flight)
        self.signum, self.stored, self.in_flight = signum, stored, in_flight


_received: list[int] = []  # the signals ``_interrupt`` received: Ray turns any exception raised in its
# blocking calls (ray.wait, ray.get) by a signal handler into a plain KeyboardInterrupt, so the number is kept here


def _interrupt(signum, frame):
    _received.append(signum)
    raise Interrupted(signum)


def _signum(exc: BaseException) -> int:
    """The signal that raised ``exc`` (SIGINT for a KeyboardInterrupt of unknown origin)."""
    return getattr(exc, "signum", None) or (_received[-1] if _received else signal.SIGINT)


def _catch_signals() -> dict:
    """SIGINT and SIGTERM raise ``Interrupted`` (Ray's own SIGTERM handler exits mid-call); return the
    handlers they had. Only the main thread can set them: elsewhere nothing changes."""
    try:
        return {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        return {}


def _set_signals(handlers: dict) -> None:
    for s, h in handlers.items():
        signal.signal(s, h if h is not None else signal.SIG_DFL)


def _ignore_signals() -> None:
    """While a grid shuts down: a second Ctrl-C does not cut the clean-up short."""
    with contextlib.suppress(ValueError):
        _set_signals({signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_IGN})


class NoCluster(ConnectionError):
    """No Ray cluster answers at the address asked for; the message is the one line to show."""


def _no_cluster(address: str, why: str) -> NoCluster:
    return NoCluster(f"no Ray cluster at {address}: {why}; start one with `ray start --head` or omit --address")


CONNECT_SECONDS = 20  # how long ray.init may take to join an existing cluster


def check_address(address: str) -> str:
    """The GCS address (host:port) of the Ray cluster at ``address`` (host:port, or auto: the cluster `ray
    start` recorded), checked by connecting to it within seconds; ``NoCluster`` when nothing is there (Ray
    itself retries for ever, or prints a traceback for auto)."""
    from ray._private import services
    try:
        gcs = services.canonicalize_bootstrap_address(address)
        host, port = services.parse_address(gcs)
    except ConnectionError:  # auto, and no cluster found
        raise _no_cluster(address, "none is running on this machine") from None
    except Exception as exc:  # a malformed address
        raise _no_cluster(address, (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]) from None
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        why = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).lower()
        raise _no_cluster(address, why if address != "auto" else f"{host}:{port}: {why}") from None
    return f"{host}:{port}"


class RayPool:
    """A Ray session for computing entries: local with ``workers`` CPUs (default and maximum: the machine's
    cores), or the cluster at ``address`` (``check_address``); one CPU and, where CUDA is present, one GPU per
    task. Use it as a context manager: Ray is shut down on leaving. SIGINT and SIGTERM raise ``Interrupted``
    (``compute`` cancels the tasks in flight)."""

    def __init__(self, workers: int | None = None, address: str | None = None, store: Store | None = None):
        check_workers(workers, address)
        self.store = store or Store()
        self.workers, self.address = (workers or os.cpu_count() or 1) if address is None else None, address
        self.stored = 0  # entries this session stored

    def __enter__(self):
        import ray
        import torch
        if self.address is not None:
            check_address(self.address)
        _received.clear()
        self.handlers = _catch_signals()  # restored on leaving
        env = {"MCMIA_QUIET": "1", "MCMIA_STORE": str(self.store.root.resolve()),
               "MCMIA_WEIGHTS": str(weights_path("x").parent.resolve())}
        if "MCMIA_THREADS" in os.environ:
            env["MCMIA_THREADS"] = os.environ["MCMIA_THREADS"]
        watchdog = None
        if self.address is not None:  # a port that accepts but is no GCS: Ray would retry for ever
            def give_up():
                print(f"mcmia: error: {_no_cluster(self.address, f'no answer within {CONNECT_SECONDS} s')}",
                      file=sys.stderr, flush=True)
                os._exit(2)
            watchdog = threading.Timer(CONNECT_SECONDS, give_up)
            watchdog.daemon = True
            watchdog.start()
        try:
            ray.init(address=self.address, num_cpus=self.workers, include_dashboard=False,
                     runtime_env={"env_vars": env}, logging_level="ERROR", log_to_driver=True)
            if watchdog:
                watchdog.cancel()
            _catch_signals()  # after ray.init, which sets a SIGTERM handler of its own
            self.remote = ray.remote(num_cpus=1, num_gpus=1 if torch.cuda.is_available() else 0, max_retries=0)(_task)
            if self.workers:  # a local Ray: start its workers now
                warm = ray.remote(num_cpus=1)(_warm)
                ray.get([warm.remote() for _ in range(self.workers)])
        except BaseException as exc:
            if watchdog:
                watchdog.cancel()
            self.__exit__(type(exc), exc, None)
            raise
        return self

    def __exit__(self, exc_type, *exc):
        import ray
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            _ignore_signals()  # a second Ctrl-C does not cut the shut-down short
        ray.shutdown()
        with contextlib.suppress(ValueError):
            _set_signals(self.handlers)

    def compute(self, specs, desc: str = "grid") -> list[tuple[object, str]]:
        """Compute the missing entries of ``specs`` as Ray tasks; return the failures as (spec, error). An
        entry that is there but damaged is moved aside (``Store.move_aside``) and computed again."""
        import ray
        from tqdm import tqdm
        root = str(self.store.root.resolve())
        first_trainer, tasks, keys, failures, running, before = {}, {}, {}, [], [], self.stored
        try:
            for spec in specs:
                key = engine.key(spec)
                if self.store.has(key):
                    problem = self.store.problem(key)
                    if problem is None:
                        continue
                    aside = self.store.move_aside(key)
                    print(f"mcmia: store entry {self.store.path(key)} is damaged ({problem}); moved it to {aside} "
                          "and computing it again", file=sys.stderr, flush=True)
                phases = engine.phases(spec)
                after = {first_trainer[k] for k in phases if k in first_trainer}
                ref = self.remote.remote(spec, root, *after)
                for k in phases:
                    if not weights_path(k).exists():
                        first_trainer.setdefault(k, ref)
                tasks[ref], keys[ref] = spec, key
                running.append(ref)
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
                        self.stored += 1
                        _log(f"stored  {key} {describe(spec)} ({seconds:.0f} s)")
                    bar.update()
        except KeyboardInterrupt as exc:
            # The tasks in flight end with the session (``__exit__``'s ray.shutdown: a local Ray's workers are
            # killed, a cluster kills the tasks of a job whose driver left); ray.cancel(force=True) here would
            # race their replies and can crash Ray's task manager (ray 2.60: "Tried to complete task that was
            # not pending"). Counted from the store: an entry a worker stored just before is stored.
            _ignore_signals()
            stored = sum(self.store.intact(k) for k in keys.values())
            raise Interrupted(_signum(exc), before + stored, len(keys) - stored - len(failures)) from None
        return failures


def compute(chapter: str, params: dict, workers: int | None = None, address: str | None = None,
            store: Store | None = None) -> list[tuple[object, str]]:
    """Compute the chapter's missing entries as Ray tasks, stage by stage; return the failures as (spec,
    error) (a stage with failures ends the grid: later stages depend on it). SIGINT or SIGTERM end it with
    ``Interrupted`` once its tasks are cancelled and Ray is shut down (no Ray process is left)."""
    pool = RayPool(workers, address, store)
    try:
        with pool:
            for stage in chapter_grid(chapter, params, pool.store):
                failures = pool.compute(stage, desc=f"{chapter} grid")
                if failures:
                    return failures
        return []
    except KeyboardInterrupt as exc:  # ``pool.compute``'s, or one between its calls
        raise Interrupted(_signum(exc), pool.stored, getattr(exc, "in_flight", 0)) from None

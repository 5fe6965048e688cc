"""mcmia: compute a chapter's store entries (Ray), execute chapters at a profile (papermill), build the book
(Jupyter Book 1), inspect the results store."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from . import chapters as declared  # the chapters package (its Params); `chapters()` below lists the notebooks
from .paths import REPO_ROOT
from .store import VERSIONS, Store

NOTEBOOKS = REPO_ROOT / "notebooks"
PARAMS = REPO_ROOT / "params"
BOOK = REPO_ROOT / "book"
PROFILES = ("smoke", "cpu", "paper")
BOOK_PROFILE = "cpu"


class UsageError(Exception):
    """A user mistake: printed without a traceback, exit code 2."""


RUNNING = REPO_ROOT / "_build" / "running"  # chapters being executed (git-ignored); a failed one stays here


def chapters() -> list[str]:
    """Every notebook (each runs under nbval at the smoke profile); dot-files are never chapters."""
    return sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb") if not p.name.startswith("."))


def book_chapters() -> list[str]:
    """Notebooks listed in ``_toc.yml`` (as ``book/<name>``): the published chapters. A notebook joins the
    book when its cpu-profile results are complete and it is added to the table of contents."""
    def files(node):
        if isinstance(node, dict):
            return ([node["file"]] if "file" in node else []) + [f for v in node.values() for f in files(v)]
        return [f for v in node for f in files(v)] if isinstance(node, list) else []

    listed = set(files(yaml.safe_load((REPO_ROOT / "_toc.yml").read_text())))
    return [name for name in chapters() if f"book/{name}" in listed]


def parse_overrides(overrides: list[tuple[str, str]]) -> dict:
    """``-p NAME VALUE`` pairs as name -> value, each VALUE parsed as YAML (``chapters.load_yaml``: ``1e-3`` is a
    number); an unparsable one raises ``UsageError``."""
    given = {}
    for k, v in overrides:
        if k == "profile":
            raise UsageError(f"-p profile {declared.cut(v, 40)}: choose the profile with --profile "
                             f"{'|'.join(PROFILES)}, not -p")
        try:
            given[k] = declared.load_yaml(v)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or type(exc).__name__
            context = getattr(exc, "context", None)
            raise UsageError(f"-p {declared.cut(k, 40)}: {declared.show(v)} is not valid YAML "
                             f"({problem}{', ' + context if context else ''}); write lists as \"[0, 1]\" and strings "
                             "as plain words") from None
    return given


def resolve_params(name: str, profile: str, overrides: list[tuple[str, str]] = ()) -> dict:
    """Every parameter the chapter runs with: the profile's YAML, then the ``-p`` overrides, the whole checked
    against the chapter's declared ``Params`` (type and range of each parameter) before anything runs; a problem
    raises ``UsageError`` with one line naming the parameter, what it expects and what it got (a long value cut
    to about 80 characters)."""
    if name not in chapters():
        raise UsageError(f"no notebook {declared.show(name)}; available: {', '.join(chapters())}")
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {declared.show(profile)}; choose one of {', '.join(PROFILES)}")
    path = declared.params_file(name, profile)
    if not path.exists():
        raise UsageError(f"missing parameter file {path}")
    where = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    params = declared.load_yaml(path.read_text()) or {}
    given = parse_overrides(overrides)
    valid = declared.params_class(name).names()
    unknown = sorted((set(params) | set(given)) - set(valid))
    if unknown:
        source = f"{where} or -p" if overrides else str(where)
        raise UsageError(f"unknown parameter(s) {declared.cut(', '.join(unknown))} for {name} (from "
                         f"{source}); valid names: {', '.join(sorted(v for v in valid if v != 'profile'))}")
    params = {**params, **given, "profile": profile}
    try:
        declared.validate(name, params)
    except declared.ParameterError as exc:
        raise UsageError(f"{'-p ' if exc.top in given else f'{where}: '}{exc}") from None
    return params


def run_grid(name: str, profile: str, overrides=(), workers: int | None = None, address: str | None = None,
             dry_run: bool = False) -> int:
    """``mcmia grid``: the dry run's summary, or compute the missing entries; the number of failed tasks."""
    from . import grid
    if name not in grid.chapters():
        raise UsageError(f"no grid for {name!r}; chapters with one: {', '.join(grid.chapters())}")
    params = resolve_params(name, profile, overrides)
    try:
        grid.check_workers(workers, address)
        if address is not None and not dry_run:
            grid.check_address(address)  # in seconds, before planning (Ray itself retries for ever)
    except (ValueError, ConnectionError) as exc:
        raise UsageError(str(exc)) from None
    try:
        p = grid.plan(name, params)
    except KeyboardInterrupt:
        print("mcmia: interrupted: 0 stored, 0 in flight; rerun to resume", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    known = len(p.missing) - p.unknown
    print(f"{name} at profile {profile}: {len(p.stored)} entries stored, {len(p.missing)} missing"
          + (f", estimated {p.seconds / 60:.1f} core-minutes" if known else "")
          + (f" ({p.unknown} without a similar stored entry)" if p.unknown else "")
          + (f"; about {p.seconds / 60 / (workers or os.cpu_count() or 1):.1f} minutes on "
             f"{workers or os.cpu_count()} worker(s)" if known and address is None else ""))
    if p.pending:
        print("  later stages are named once these entries are stored")
    changed = grid.stale(p.stored)
    if changed:
        parts = ", ".join(sorted({c for _, cs in changed for c in cs}))
        print(f"  {len(changed)} stored entries were computed by source that has changed since ({parts}): `mcmia list` "
              "names them; if the change alters results, bump its component in store.VERSIONS")
    if p.damaged:
        print(f"  {len(p.damaged)} of them damaged (they do not read back): the grid moves them to "
              f"{Store().root / '.damaged'} and computes them again")
    if dry_run:
        for spec, (seconds, how) in list(zip(p.missing, p.estimates))[:40]:
            cost = (f"{seconds / 60:6.1f} min ({how})" if seconds is not None and seconds >= 60 else
                    f"{seconds:6.1f} s   ({how})" if seconds is not None else f"     ? ({how})")
            print(f"  missing {cost}  {grid.describe(spec)}")
        if len(p.missing) > 40:
            print(f"  ... and {len(p.missing) - 40} more")
        return 0
    if not p.missing and not p.pending:
        return 0
    try:
        failures = grid.compute(name, params, workers, address)
    except grid.NoCluster as exc:
        raise UsageError(str(exc)) from None
    except grid.Interrupted as exc:  # Ctrl-C or SIGTERM: the tasks are cancelled and Ray is shut down
        print(f"mcmia: interrupted: {exc.stored} stored, {exc.in_flight} in flight; rerun to resume",
              file=sys.stderr, flush=True)
        raise SystemExit(128 + exc.signum) from None
    for spec, error in failures:
        print(f"mcmia: failed: {grid.describe(spec)}: {error}", file=sys.stderr)
    return len(failures)


def grid_command(name: str, profile: str, overrides=()) -> str:
    """The ``mcmia grid`` command line that computes the entries of ``mcmia run name --profile profile -p ...``."""
    import shlex
    return " ".join(["mcmia grid", name, "--profile", profile]
                    + [f"-p {k} {shlex.quote(str(v))}" for k, v in overrides])


def ensure_stored(name: str, profile: str, overrides=(), compute: bool = False) -> None:
    """Before ``mcmia run`` starts a kernel: at a profile other than smoke, a chapter whose store entries are
    missing is refused in one line (how many, their estimated core-minutes, the ``mcmia grid`` command that
    computes them), so that hours of training never start unasked inside a kernel; ``compute`` runs the grid
    first instead (Ray, with a progress bar). Smoke runs compute in the kernel."""
    from . import grid
    if profile == "smoke" or name not in grid.chapters():
        return
    params = resolve_params(name, profile, overrides)
    p = grid.plan(name, params)
    if not p.missing and not p.pending:
        return
    if compute:
        if run_grid(name, profile, overrides):
            raise UsageError(f"{name}: grid tasks failed (above); fix them and run again")
        return
    known = len(p.missing) - p.unknown
    cost = (f"estimated {p.seconds / 60:.1f} core-minutes" if known else "no estimate") + (
        f", {p.unknown} of them without a similar stored entry" if p.unknown and known else "")
    later = " (and later stages once these are stored)" if p.pending else ""
    entries = f"{len(p.missing)} store entr{'y' if len(p.missing) == 1 else 'ies'} missing"
    raise UsageError(f"{name} at profile {profile}: {entries}{later}, {cost}; "
                     f"compute them with `{grid_command(name, profile, overrides)}`, then run again "
                     "(or add --compute to compute them now)")


def source_hash(name: str, params: dict) -> str:
    """Hash of the notebook's code/markdown (outputs and injected parameters excluded), its parameters, the
    library's source (the chapter's module computes what it shows) and its component versions: a change in any
    of them re-executes the chapter."""
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    cells = [c["source"] for c in nb["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    package = Path(__file__).parent
    library = hashlib.sha256()
    for f in sorted(package.rglob("*.py")):
        library.update(f.relative_to(package).as_posix().encode() + b"\0" + f.read_bytes())
    blob = json.dumps({"cells": cells, "params": params, "versions": VERSIONS, "library": library.hexdigest()},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def output_path(name: str, profile: str) -> Path:
    """Smoke runs refresh the committed nbval copy in notebooks/; other profiles write the book's chapter."""
    return NOTEBOOKS / f"{name}.ipynb" if profile == "smoke" else BOOK / f"{name}.ipynb"


def execute(name: str, profile: str, overrides=(), output: Path | None = None) -> Path:
    import nbformat
    import papermill as pm

    params = resolve_params(name, profile, overrides)
    out = Path(output) if output else output_path(name, profile)
    check_output(out, name)
    RUNNING.mkdir(parents=True, exist_ok=True)
    tmp = RUNNING / f"{name}.{profile}.ipynb"  # outside notebooks/ and book/: a failure leaves them as they were
    os.environ["MCMIA_QUIET"] = "1"  # no progress bars inside executed chapters
    t0 = time.perf_counter()
    print(f"executing {name} at profile {profile} -> {out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out}")
    try:
        pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(tmp), kernel_name="python3",
                            parameters={"profile": profile, "overrides": parse_overrides(overrides)},
                            cwd=str(NOTEBOOKS), progress_bar=False, log_output=False)
    except pm.PapermillExecutionError as exc:
        where = tmp.relative_to(REPO_ROOT) if tmp.is_relative_to(REPO_ROOT) else tmp
        raise UsageError(f"{name} failed at profile {profile}: {exc.ename}: {exc.evalue} "
                         f"(the executed copy is kept at {where})") from exc
    nb = nbformat.read(tmp, as_version=4)
    for cell in nb.cells:  # the settings table shows the parameters; the book hides the raw cells
        tags = cell.metadata.get("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            cell.metadata["tags"] = tags + ["remove-cell"]
    nb.metadata["mcmia"] = {"profile": profile, "params": params, "source_hash": source_hash(name, params),
                            "seconds": round(time.perf_counter() - t0, 1)}
    nbformat.write(nb, tmp)
    if tmp.stat().st_dev == out.parent.stat().st_dev:
        os.replace(tmp, out)
    else:  # --output on another file system
        _copy_then_remove(tmp, out)
    return out


def check_output(out: Path, name: str) -> None:
    """Refuse, before anything runs, an output path the executed notebook cannot be written to: a folder, a
    path through a file, or a place where no file can be created (its missing folders are created)."""
    if out.is_dir():
        raise UsageError(f"--output {out} is a folder; name a file, e.g. {out / f'{name}.ipynb'}")
    first = next(p for p in out.parents if p.exists())
    if not first.is_dir():
        raise UsageError(f"cannot write the executed notebook to {out}: {first} is a file; choose another --output")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write the executed notebook to {out} ({exc.strerror or type(exc).__name__} in "
                         f"{first}); choose another --output") from None


STORE_PATHS = ("MCMIA_STORE", "MCMIA_WEIGHTS", "MCMIA_DATA_DIR")  # folders the CLI and its kernels use


def absolute_store_paths() -> None:
    """Make the folders named by ``STORE_PATHS`` absolute against the user's working directory, once, so that
    ``run`` (whose kernel works in notebooks/), ``grid`` (its Ray workers), ``list`` and ``clean`` all mean the
    same folders; the kernels and workers inherit the environment."""
    for var in STORE_PATHS:
        if os.environ.get(var):
            os.environ[var] = str(Path(os.environ[var]).expanduser().absolute())


def check_store_folders() -> None:
    """The results store and the weights folder must be folders (or not exist yet): a file there is one line."""
    from .paths import weights_root
    from .store import default_root
    for var, path in (("MCMIA_STORE", default_root()), ("MCMIA_WEIGHTS", weights_root())):
        first = next((p for p in (path, *path.parents) if p.exists()), None)
        if first is not None and not first.is_dir():
            what = f"{var}={path}" if os.environ.get(var) else f"the default {var} folder {path}"
            raise UsageError(f"{what} is not a folder ({first} is a file); set {var} to a folder (created if "
                             "missing)")


def _library_error(exc: Exception) -> str | None:
    """One line for an error the library raises for a missing or damaged dataset (``run`` reports it from the
    kernel; ``grid`` meets it while planning); None for anything else."""
    data = sys.modules.get(f"{__package__}.data")
    if data is not None and isinstance(exc, (data.DatasetNotFoundError, data.CorruptDatasetError)):
        return f"{type(exc).__name__}: " + " ".join(str(exc).split())
    return None


def _copy_then_remove(src: Path, dst: Path) -> None:
    """Move across file systems: write a temporary beside ``dst``, rename it into place, remove ``src``."""
    from .paths import atomic_write_bytes
    atomic_write_bytes(dst, src.read_bytes())
    src.unlink()


def clean_key(store: Store, key: str) -> Path:
    """Delete one well-formed entry directly under the store root; refuse anything else."""
    from . import engine
    if not engine.is_key(key):
        prefixes = ", ".join(p for p in engine.prefixes() if p)
        raise UsageError(f"--key {declared.show(key)} is not a store key (16 hex digits, optionally after one of "
                         f"{prefixes}; `mcmia list` shows them)")
    path = store.path(key)
    if not (path.is_dir() and path.parent.resolve() == store.root.resolve()):
        raise UsageError(f"no such entry in {store.root}: {key}")
    store.delete(key)
    return path


def is_current(name: str, profile: str) -> bool:
    out = output_path(name, profile)
    if not out.exists():
        return False
    meta = json.loads(out.read_text()).get("metadata", {}).get("mcmia", {})
    return meta.get("source_hash") == source_hash(name, resolve_params(name, profile))


def failed_notebooks(paths) -> list[str]:
    """Executed notebooks that recorded an exception (an error output or papermill's exception flag)."""
    bad = []
    for p in paths:
        nb = json.loads(Path(p).read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        flagged = any(c.get("metadata", {}).get("papermill", {}).get("exception") for c in nb["cells"])
        if errors or flagged:
            bad.append(str(p))
    return bad


def build_book(execute_stale: bool = True, profile: str = BOOK_PROFILE) -> Path:
    """Execute the chapters that changed (after computing their grids' missing entries) and build the book."""
    from . import grid
    if execute_stale:
        for name in book_chapters():
            if is_current(name, profile):
                print(f"{name}: up to date at profile {profile}")
                continue
            if name in grid.chapters() and run_grid(name, profile):
                raise UsageError(f"{name}: grid tasks failed (above); fix them and run `mcmia book` again")
            execute(name, profile)
    bad = failed_notebooks(BOOK / f"{name}.ipynb" for name in book_chapters())
    if bad:
        raise UsageError("executed chapters recorded an exception: " + ", ".join(bad))
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(REPO_ROOT), "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise UsageError(f"jupyter-book build failed (exit {proc.returncode}); warnings count as errors")
    index = REPO_ROOT / "_build" / "html" / "index.html"
    print(f"book: {index}")
    return index


def list_store(store: Store) -> None:
    """One row per entry, whatever its kind (``engine.kinds``): its kind, what it is (``grid.describe``), its
    test accuracy, when it was finished and which components' source has changed since ("?": not recorded); a
    damaged entry is listed with its problem, not fatal."""
    import pandas as pd
    from . import engine
    from .grid import describe
    rows = []
    for key in store.keys():
        problem = store.problem(key)
        if problem:
            rows.append({"key": key, "kind": "damaged", "entry": problem})
            continue
        spec = json.loads((store.path(key) / "spec.json").read_text())
        result = json.loads((store.path(key) / "result.json").read_text())
        changed = engine.stale_components(spec.get("__type__"), result)
        rows.append({"key": key, "kind": spec.get("__type__"), "entry": describe(spec),
                     "test_acc": round(result.get("test_acc", float("nan")), 4),
                     "finished": result.get("provenance", {}).get("finished"),
                     "source changed": "?" if changed is None else ", ".join(changed) or "no"})
    if not rows:
        print(f"store {store.root} is empty")
        return
    with pd.option_context("display.width", 200, "display.max_rows", None, "display.max_colwidth", 80):
        print(pd.DataFrame(rows).to_string(index=False))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="mcmia", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute one chapter notebook at a profile")
    r.add_argument("notebook", help="notebook name (see `mcmia run --list`)", nargs="?")
    r.add_argument("--profile", default=BOOK_PROFILE, help=f"one of {', '.join(PROFILES)} (default {BOOK_PROFILE})")
    r.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override one parameter (VALUE parsed as YAML); repeatable")
    r.add_argument("--output", help="where to write the executed notebook (default: notebooks/ for smoke, "
                                    "book/ otherwise)")
    r.add_argument("--list", action="store_true", help="list the notebooks and their parameters")
    r.add_argument("--compute", action="store_true",
                   help="compute missing store entries first (as `mcmia grid` does); without it a non-smoke run "
                        "whose entries are missing is refused with their estimated cost")
    b = sub.add_parser("book", help="execute stale chapters at the book's profile and build the HTML book")
    b.add_argument("--no-execute", action="store_true", help="build from the executed chapters as they are")
    b.add_argument("--profile", default=BOOK_PROFILE)
    g = sub.add_parser("grid", help="compute a chapter's missing store entries as Ray tasks (then `mcmia run`)")
    g.add_argument("notebook", help="chapter name (see `mcmia run --list`)")
    g.add_argument("--profile", default=BOOK_PROFILE, help=f"one of {', '.join(PROFILES)} (default {BOOK_PROFILE})")
    g.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override one parameter (VALUE parsed as YAML); repeatable")
    g.add_argument("--workers", type=int, help="tasks at once on this machine (default: its cores; at most that)")
    g.add_argument("--address", help="an existing Ray cluster (e.g. auto, or host:port) instead of a local Ray")
    g.add_argument("--dry-run", action="store_true",
                   help="list what is stored, what is missing and its estimated cost; compute nothing")
    sub.add_parser("list", help="list the results store")
    c = sub.add_parser("clean", help="remove partial entries, or one entry by key")
    c.add_argument("--key", help="delete this store entry (it is recomputed on the next run)")
    args = ap.parse_args(argv)
    absolute_store_paths()
    try:
        if not (args.cmd == "run" and (args.list or not args.notebook)):
            check_store_folders()
        if args.cmd == "run":
            if args.list or not args.notebook:
                for name in chapters():
                    names = declared.params_class(name).names()
                    print(f"{name}: {', '.join(sorted(n for n in names if n != 'profile'))}")
                return 0
            output = Path(args.output).absolute() if args.output else None
            if output:  # before any computing (``--compute``) or executing
                check_output(output, args.notebook)
            ensure_stored(args.notebook, args.profile, args.param, args.compute)
            execute(args.notebook, args.profile, args.param, output)
        elif args.cmd == "grid":
            return 1 if run_grid(args.notebook, args.profile, args.param, args.workers, args.address,
                                 args.dry_run) else 0
        elif args.cmd == "book":
            build_book(not args.no_execute, args.profile)
        elif args.cmd == "list":
            list_store(Store())
        elif args.cmd == "clean":
            store = Store()
            if args.key:
                print(f"removed entry {clean_key(store, args.key)}")
            print(f"removed {store.clean_partial()} partial entries from {store.root}")  # a running grid's stay
            from .weights import clean_partial_weights
            removed, folder = clean_partial_weights(store)  # atomic writes cut by a kill; a running grid's stay
            print(f"removed {removed} temporary weight and checkpoint files from {folder}")
    except UsageError as exc:
        print(f"mcmia: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        line = _library_error(exc)
        if line is None:
            raise
        print(f"mcmia: error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

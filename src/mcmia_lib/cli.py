"""mcmia: execute chapters at a profile (papermill), build the book (Jupyter Book 1), inspect the results store."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .paths import REPO_ROOT
from .store import VERSIONS, Store

NOTEBOOKS = REPO_ROOT / "notebooks"
PARAMS = REPO_ROOT / "params"
BOOK = REPO_ROOT / "book"
PROFILES = ("smoke", "cpu", "paper")
BOOK_PROFILE = "cpu"


class UsageError(Exception):
    """A user mistake: printed without a traceback, exit code 2."""


def chapters() -> list[str]:
    """Every notebook (each runs under nbval at the smoke profile)."""
    return sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def book_chapters() -> list[str]:
    """Notebooks listed in ``_toc.yml`` (as ``book/<name>``): the published chapters. A notebook joins the
    book when its cpu-profile results are complete and it is added to the table of contents."""
    def files(node):
        if isinstance(node, dict):
            return ([node["file"]] if "file" in node else []) + [f for v in node.values() for f in files(v)]
        return [f for v in node for f in files(v)] if isinstance(node, list) else []

    listed = set(files(yaml.safe_load((REPO_ROOT / "_toc.yml").read_text())))
    return [name for name in chapters() if f"book/{name}" in listed]


def notebook_parameters(name: str) -> dict:
    """Parameters the notebook declares in its cell tagged ``parameters`` (name -> default)."""
    import papermill as pm
    return {k: v["default"] for k, v in pm.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb")).items()}


def resolve_params(name: str, profile: str, overrides: list[tuple[str, str]] = ()) -> dict:
    """The profile's YAML plus ``-p`` overrides; every name must be a parameter of the notebook."""
    if name not in chapters():
        raise UsageError(f"no notebook {name!r}; available: {', '.join(chapters())}")
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    path = PARAMS / name / f"{profile}.yaml"
    if not path.exists():
        raise UsageError(f"missing parameter file {path}")
    params = yaml.safe_load(path.read_text()) or {}
    valid = notebook_parameters(name)
    for k, v in overrides:
        params[k] = yaml.safe_load(v)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        where = f"{path} or -p" if overrides else str(path)
        raise UsageError(f"unknown parameter(s) {', '.join(unknown)} for {name} (from {where}); "
                         f"valid names: {', '.join(sorted(valid))}")
    params["profile"] = profile
    return params


def source_hash(name: str, params: dict) -> str:
    """Hash of the notebook's code/markdown (outputs and injected parameters excluded), its parameters and
    the library's component versions: a change in any of them re-executes the chapter."""
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    cells = [c["source"] for c in nb["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    blob = json.dumps({"cells": cells, "params": params, "versions": VERSIONS}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def output_path(name: str, profile: str) -> Path:
    """Smoke runs refresh the committed nbval copy in notebooks/; other profiles write the book's chapter."""
    return NOTEBOOKS / f"{name}.ipynb" if profile == "smoke" else BOOK / f"{name}.ipynb"


def execute(name: str, profile: str, overrides=(), output: Path | None = None) -> Path:
    import nbformat
    import papermill as pm

    params = resolve_params(name, profile, overrides)
    out = Path(output) if output else output_path(name, profile)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.running.ipynb")
    os.environ["MCMIA_QUIET"] = "1"  # no progress bars inside executed chapters
    t0 = time.perf_counter()
    print(f"executing {name} at profile {profile} -> {out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out}")
    try:
        pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(tmp), parameters=params, kernel_name="python3",
                            cwd=str(NOTEBOOKS), progress_bar=False, log_output=False)
    except pm.PapermillExecutionError as exc:
        raise UsageError(f"{name} failed at profile {profile}: {exc.ename}: {exc.evalue} "
                         f"(executed notebook kept at {tmp})") from exc
    nb = nbformat.read(tmp, as_version=4)
    for cell in nb.cells:  # the settings table shows the parameters; the book hides the raw cells
        tags = cell.metadata.get("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            cell.metadata["tags"] = tags + ["remove-cell"]
    nb.metadata["mcmia"] = {"profile": profile, "params": params, "source_hash": source_hash(name, params),
                            "seconds": round(time.perf_counter() - t0, 1)}
    nbformat.write(nb, tmp)
    tmp.replace(out)
    return out


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
    if execute_stale:
        for name in book_chapters():
            if is_current(name, profile):
                print(f"{name}: up to date at profile {profile}")
            else:
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
    import pandas as pd
    rows = []
    for key in store.keys():
        try:
            e = store.load(key)
        except Exception as exc:  # a corrupt entry is listed, not fatal
            rows.append({"key": key, "status": f"corrupt: {exc}"})
            continue
        s, r = e.spec, e.result
        nn = r.get("attacks", {}).get("nn", {})
        defense = "+".join(d for d in ("pruning", "minmax") if d in s) or "none"
        rows.append({"key": key, "dataset": s.get("dataset"), "model": s.get("model"), "seed": s.get("seed"),
                     "epochs": s.get("train", {}).get("epochs"), "defense": defense,
                     "nn_init": s.get("nn_attack", {}).get("init", "-"), "test_acc": round(r.get("test_acc", float("nan")), 4),
                     "nn_acc": round(nn.get("accuracy", float("nan")), 4),
                     "finished": r.get("provenance", {}).get("finished")})
    if not rows:
        print(f"store {store.root} is empty")
        return
    with pd.option_context("display.width", 200, "display.max_rows", None):
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
    b = sub.add_parser("book", help="execute stale chapters at the book's profile and build the HTML book")
    b.add_argument("--no-execute", action="store_true", help="build from the executed chapters as they are")
    b.add_argument("--profile", default=BOOK_PROFILE)
    sub.add_parser("list", help="list the results store")
    c = sub.add_parser("clean", help="remove partial entries, or one entry by key")
    c.add_argument("--key", help="delete this store entry (it is recomputed on the next run)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "run":
            if args.list or not args.notebook:
                for name in chapters():
                    print(f"{name}: {', '.join(sorted(notebook_parameters(name)))}")
                return 0
            execute(args.notebook, args.profile, args.param, args.output)
        elif args.cmd == "book":
            build_book(not args.no_execute, args.profile)
        elif args.cmd == "list":
            list_store(Store())
        elif args.cmd == "clean":
            store = Store()
            if args.key:
                store.delete(args.key)
                print(f"deleted {store.path(args.key)}")
            print(f"removed {store.clean_partial()} partial entries from {store.root}")
    except UsageError as exc:
        print(f"mcmia: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Grid throughput (issue 18): the same ``--tasks`` small tasks (the quickstart's digits target, one seed each)
computed in this process one after the other, then as Ray tasks with 1 and with 2 workers, each into a fresh
scratch store. Prints the speed-up of 2 workers over 1 (goal ≥ 1.7×) and Ray's overhead per task against the
in-process path, also as a share of a one-minute task (goal ≤ 3 %), beside this core's fp32 matmul rate.

Usage: ``python benchmarks/grid_throughput.py [--tasks 8] [--epochs 600] [--save PATH]`` on an otherwise idle
machine with at least 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from mcmia_lib import engine
from mcmia_lib.experiments import quickstart_spec
from mcmia_lib.store import Store
from mcmia_lib.threads import cpu_model, matmul_gflops


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=600, help="training epochs per task (sets its length)")
    ap.add_argument("--save", metavar="PATH", help="write the figures and the conditions to this JSON file")
    args = ap.parse_args()
    os.environ["MCMIA_QUIET"] = "1"
    from mcmia_lib.grid import RayPool
    load, started = os.getloadavg()[0], time.strftime("%Y-%m-%d %H:%M")
    rate = matmul_gflops()
    p = dict(n_target=300, epochs=args.epochs, batch_size=32, lr=0.003, nn_epochs=40)
    specs = [quickstart_spec(p, s) for s in range(args.tasks)]
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in ("in process", "ray 1 worker", "ray 2 workers"):
            root = Path(tmp) / case.replace(" ", "_")
            os.environ["MCMIA_WEIGHTS"] = str(root / "weights")  # nothing cached between the cases
            store = Store(root / "store")
            if case == "in process":
                seconds[case] = _timed(lambda: [engine.run(s, store) for s in specs])
            else:
                with RayPool(workers=int(case.split()[1]), store=store) as pool:  # Ray's start-up is not timed
                    seconds[case] = _timed(lambda: pool.compute(specs, desc=case))
    speedup = seconds["ray 1 worker"] / seconds["ray 2 workers"]
    overhead = (seconds["ray 1 worker"] - seconds["in process"]) / args.tasks
    task = seconds["in process"] / args.tasks
    run = {"tasks": args.tasks, "task_seconds_in_process": task, "seconds": seconds, "speedup_2_over_1": speedup,
           "ray_overhead_seconds_per_task": overhead, "overhead_share_of_one_minute_task": overhead / 60,
           "matmul_gflops_per_core": rate, "cpu": cpu_model(), "cores": os.cpu_count(),
           "load_average_before": load, "started": started}
    print(f"{args.tasks} tasks of {task:.1f} s: in process {seconds['in process']:.1f} s, Ray 1 worker "
          f"{seconds['ray 1 worker']:.1f} s, Ray 2 workers {seconds['ray 2 workers']:.1f} s; 2 workers / 1 = "
          f"{speedup:.2f}x; Ray's overhead {overhead:.2f} s per task = {100 * overhead / 60:.1f} % of a one-minute "
          f"task (this core's fp32 matmul: {rate:.0f} GFLOP/s)")
    if args.save:
        Path(args.save).write_text(json.dumps(run, indent=1))


if __name__ == "__main__":
    main()

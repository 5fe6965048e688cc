"""Background job for the sparsity chapter: compute its store entries task by task, committing the results
store and the trained weights after each, so that a stopped machine loses at most one task.

    python jobs/sparsity.py --profile cpu dense:0 bf:2:3:0 imp:10:1

Tasks: ``dense:RUN``, ``bf:S:L:RUN`` (butterfly in the last S segments, L factors) and ``imp:K:RUN`` (IMP
rounds 1..K of one run, in order, each its own entry). Run two jobs with disjoint tasks on two cores.
"""
import time

from mcmia_lib.experiments import gonon_spec
from mcmia_lib.report import profile_params
from mcmia_lib.sparsity import SparseNet, run_sparsity

from common import commit_results, parse_args


def nets(task: str) -> tuple[list, int]:
    kind, *args = task.split(":")
    if kind == "dense":
        return [SparseNet("dense")], int(args[0])
    if kind == "bf":
        return [SparseNet("butterfly", segments=int(args[0]), factors=int(args[1]))], int(args[2])
    if kind == "imp":
        return [SparseNet("imp", prunings=k) for k in range(1, int(args[0]) + 1)], int(args[1])
    raise SystemExit(f"unknown task {task!r}: use dense:RUN, bf:S:L:RUN or imp:K:RUN")


def main():
    args = parse_args(__doc__)
    p = profile_params("sparsity", args.profile)
    for task in args.tasks:
        todo, run = nets(task)
        for net in todo:
            t0 = time.time()
            r = run_sparsity(gonon_spec(p, net, run)).result
            print(f"{time.strftime('%H:%M:%S')} {net.label} run {run}: test {r['test_acc']:.4f} "
                  f"nonzero {r['nonzero_fraction']:.4f} D {r['attacks']['gonon']['defense']:.1f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
            commit_results(f"sparsity {args.profile} profile: {net.label}, run {run}")


if __name__ == "__main__":
    main()

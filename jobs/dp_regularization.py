"""Background job for the DP-SGD and regularization chapter: compute its store entries task by task,
committing the results store and the trained weights after each.

    python jobs/dp_regularization.py --profile cpu clip:mnist run:mnist:1 inv:cifar10 t1:CIFAR-10-CNN:0

Tasks: ``clip:DATASET`` (choose DP-SGD's clipping norm per ε), ``run:DATASET:SEED`` (the seven configurations),
``inv:DATASET`` (model inversion from every layer at the inversion seed; ``inv:DATASET:LAYER`` from one layer,
``inv:DATASET:LAYER:CONFIG`` for one configuration), ``t1:ROW:SEED`` (000 Table I: DP-SGD
and MCMIA-Pruning). A dataset's ``clip`` task must precede its other tasks in another job running at the same
time, or both train the same candidates.
"""
import time

from mcmia_lib.experiments import (choose_clip, dp_column_spec, lomurno_configs, lomurno_spec, mcmia_spec,
                                   table_i_rows)
from mcmia_lib.inversion import InversionSpec, run_inversion
from mcmia_lib.report import profile_params
from mcmia_lib.runner import run

from common import commit_results, parse_args


def main():
    args = parse_args(__doc__)
    p = profile_params("dp_regularization", args.profile)
    clip = lambda d: choose_clip({**p, "dataset": d})[0]  # noqa: E731  (cached weights after the first call)
    stamp = lambda: time.strftime("%H:%M:%S")  # noqa: E731
    for task in args.tasks:
        kind, name, *rest = task.split(":")
        if kind == "clip":
            print(f"{stamp()} clip {name}: {clip(name)}", flush=True)
        elif kind == "run":
            q = {**p, "dataset": name, "max_grad_norm": clip(name)}
            for c in lomurno_configs(p["epsilons"]):
                r = run(lomurno_spec(q, c, int(rest[0]))).result
                print(f"{stamp()} {name} {c} seed {rest[0]}: test {r['test_acc']:.4f} "
                      f"AUC {r['attacks']['tfp']['auc']:.4f}", flush=True)
        elif kind == "inv":
            q = {**p, "dataset": name, "max_grad_norm": clip(name)}
            for c in [rest[1]] if len(rest) > 1 else lomurno_configs(p["epsilons"]):
                for layer in rest[:1] or p["inversion_layers"]:
                    e = run_inversion(InversionSpec(lomurno_spec(q, c, p["inversion_seed"]), layer,
                                                    epochs=p["inversion_epochs"], n_train=p["inversion_n_train"],
                                                    n_val=p["inversion_n_val"],
                                                    n_test=p["inversion_n_test"]))
                    print(f"{stamp()} inversion {name} {c} {layer}: MSE {e.result['test_mse']:.4f}", flush=True)
        elif kind == "t1":
            rows = table_i_rows(p["table_i"], profile_params("mcmia_lenet5", args.profile),
                                profile_params("mcmia_cifar10", args.profile),
                                {d: clip(d) for d in ("mnist", "cifar10")}, p["delta"])
            dp_p, mcmia_p = rows[name]
            for label, spec in (("DP-SGD", dp_column_spec(dp_p, int(rest[0]))),
                                ("MCMIA-Pruning", mcmia_spec(mcmia_p, "pruning", int(rest[0])))):
                r = run(spec).result
                print(f"{stamp()} {name} {label} seed {rest[0]}: test {r['test_acc']:.4f} "
                      f"NN attack {r['attacks']['nn']['accuracy']:.4f}", flush=True)
        else:
            raise SystemExit(f"unknown task {task!r}")
        commit_results(f"dp_regularization {args.profile} profile: {task}")


if __name__ == "__main__":
    main()

import json
import time

import numpy as np
import pytest

from mcmia_lib import runner as runner_mod, store as store_mod
from mcmia_lib.attacks import NNAttackConfig
from mcmia_lib.runner import ExperimentSpec, run, training_key
from mcmia_lib.store import RUN_COMPONENTS, CorruptEntryError, spec_key
from mcmia_lib.train import TrainConfig

SPEC = ExperimentSpec("digits", "mlp", TrainConfig(epochs=3, batch_size=64, lr=1e-3, optimizer="adam"),
                      nn_attack=NNAttackConfig(epochs=2, init="default"))


def _changed(value):
    """Another valid value of a spec field of ``value``'s type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return {"sgd": "adam", "adam": "sgd", "none": "step", "digits": "mnist", "mlp": "lenet5", "default": "normal", "normal": "default"}.get(value, value + "x")
    if isinstance(value, tuple):
        return value + value[-1:]
    return None


# options that are None (off) by default, switched on (the one-cycle warm-up needs its schedule)
OFF_BY_DEFAULT = {"nesterov": {"nesterov": True}, "label_smoothing": {"label_smoothing": 0.1},
                  "decay_weights_only": {"decay_weights_only": True}, "channels_last": {"channels_last": True},
                  "eval_flip": {"eval_flip": True}, "bf16": {"bf16": True},
                  "warmup": {"schedule": "onecycle", "warmup": 0.3}}


def test_every_spec_and_training_field_changes_the_key():
    from dataclasses import fields, is_dataclass, replace
    from mcmia_lib.defenses.minmax import MinMax
    spec = ExperimentSpec(**{**SPEC.__dict__, "minmax": MinMax(lam=1.0), "n_target": 500, "tfp_attack": False,
                             "train": TrainConfig(epochs=3, batch_size=64, lr=1e-3, optimizer="sgd", curve_subset=100)})
    variants = {"base": spec}
    for f in fields(spec):
        value = getattr(spec, f.name)
        if is_dataclass(value):
            for g in fields(value):
                change = OFF_BY_DEFAULT.get(g.name, {g.name: _changed(getattr(value, g.name))})
                variants[f"{f.name}.{g.name}"] = replace(spec, **{f.name: replace(value, **change)})
        elif value is not None:
            variants[f.name] = replace(spec, **{f.name: _changed(value)})
    assert {"train.lr", "train.curve_subset", "train.nesterov", "minmax.attack_steps", "nn_attack.init_std", "seed",
            "tfp_attack"} <= set(variants)
    keys = {name: spec_key(v, RUN_COMPONENTS) for name, v in variants.items()}
    assert len(set(keys.values())) == len(keys), [n for n in keys if list(keys.values()).count(keys[n]) > 1]


def test_key_depends_on_every_field_and_versions(monkeypatch):
    k, tk = spec_key(SPEC, RUN_COMPONENTS), training_key(SPEC)
    assert spec_key(SPEC.with_seed(1), RUN_COMPONENTS) != k
    assert spec_key(ExperimentSpec(**{**SPEC.__dict__, "width": 0.5}), RUN_COMPONENTS) != k
    assert tk == training_key(ExperimentSpec(**{**SPEC.__dict__, "nn_attack": NNAttackConfig()}))
    monkeypatch.setitem(store_mod.VERSIONS, "attacks", 999)
    assert spec_key(SPEC, RUN_COMPONENTS) != k
    assert training_key(SPEC) == tk  # a new attack version re-runs attacks, not training
    monkeypatch.setitem(store_mod.VERSIONS, "train", 999)
    assert training_key(SPEC) != tk


def test_run_caches_and_second_call_is_fast(tmp_store):
    e1 = run(SPEC, tmp_store)
    t = time.perf_counter()
    e2 = run(SPEC, tmp_store)
    assert time.perf_counter() - t < 0.5
    assert json.dumps(e1.result, sort_keys=True) == json.dumps(e2.result, sort_keys=True) and e1.key == e2.key
    np.testing.assert_array_equal(e1.arrays["score_loss"], e2.arrays["score_loss"])
    assert {"loss", "confidence", "entropy", "modified_entropy", "nn"} == set(e1.result["attacks"])
    assert len(e1.result["history"]) == 3 and "loss_attack_auc" in e1.result["history"][0]


def test_atomic_save_leaves_no_partial_entry(tmp_store, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt  # killed midway through writing the arrays

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(KeyboardInterrupt):
        tmp_store.save("abc", {"x": 1}, {"m": 1.0}, {"a": np.zeros(3)})
    assert not tmp_store.has("abc") and tmp_store.keys() == []
    assert list(tmp_store.root.iterdir()) == []


def test_corrupt_entry_is_reported_and_recomputed(tmp_store):
    e = run(SPEC, tmp_store)
    (e.path / "result.json").write_text("{not json")
    with pytest.raises(CorruptEntryError, match=str(e.path)):
        run(SPEC, tmp_store)
    e2 = run(SPEC, tmp_store, recompute=True)
    assert json.loads((e2.path / "result.json").read_text())["test_acc"] == e.result["test_acc"]


def test_weights_reused_across_attack_specs(tmp_store, monkeypatch):
    first = run(SPEC, tmp_store)
    other = ExperimentSpec(**{**SPEC.__dict__, "nn_attack": NNAttackConfig(epochs=1)})

    def forbidden(*a, **k):
        raise AssertionError("the target was retrained although its weights are stored")
    monkeypatch.setattr(runner_mod, "train", forbidden)
    e = run(other, tmp_store)
    assert e.key != first.key and e.result["test_acc"] == first.result["test_acc"]
    assert e.result["provenance"]["seconds_train"] == first.result["provenance"]["seconds_train"]


def test_pruned_and_minmax_targets_through_the_runner(tmp_store):
    from mcmia_lib.defenses.minmax import MinMax
    from mcmia_lib.defenses.pruning import ADMMPruning
    pruning = ADMMPruning(rates=(0.5, 0.9, 0.8), admm_epochs=2, retrain_epochs=2, rho=0.1)
    pruned = run(ExperimentSpec(**{**SPEC.__dict__, "pruning": pruning}), tmp_store)
    both = run(ExperimentSpec(**{**SPEC.__dict__, "pruning": pruning, "minmax": MinMax(lam=1.0)}), tmp_store)
    for e in (pruned, both):
        rows = e.result["sparsity"]
        assert [r["nonzero"] for r in rows] == [r["weights"] - round(rate * r["weights"])
                                               for r, rate in zip(rows, pruning.rates)]
        assert [h["phase"] for h in e.result["history"]] == ["train"] * 3 + ["admm"] * 2 + ["retrain"] * 2
    assert "minmax_gain" in both.result["history"][-1] and "minmax_gain" not in pruned.result["history"][-1]
    # the pretraining phase is the undefended target, shared with the baseline
    base = run(SPEC, tmp_store)
    assert base.result["history"] == pruned.result["history"][:3]
    game = run(ExperimentSpec(**{**SPEC.__dict__, "minmax": MinMax(lam=1.0)}), tmp_store)
    assert all("minmax_gain" in h for h in game.result["history"])


def test_a_fresh_result_equals_its_cache_hit_to_the_letter(tmp_store):
    fresh = run(SPEC, tmp_store)
    hit = run(SPEC, tmp_store)
    assert json.dumps(fresh.result) == json.dumps(hit.result)  # same key order too
    assert all(fresh.arrays[k].dtype == hit.arrays[k].dtype for k in hit.arrays)


def test_leakage_probe_subset_is_balanced_and_drawn_from_the_evaluation_set():
    from mcmia_lib.data import load_dataset, membership_split
    from mcmia_lib.runner import LeakageProbe
    ds = load_dataset("digits")
    split = membership_split(len(ds.y_train), len(ds.y_test), 0, 600)
    full, sub = LeakageProbe(ds, split, "cpu"), LeakageProbe(ds, split, "cpu", 50)
    assert len(full.member) == len(split.eval_in) + len(split.eval_out)
    assert sub.member.tolist() == [1] * 25 + [0] * 25
    rows = {tuple(r) for r in full.x.flatten(1).tolist()}
    assert all(tuple(r) in rows for r in sub.x.flatten(1).tolist())

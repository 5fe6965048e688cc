"""Every kind of store entry that ``engine.kinds()`` registers meets one contract (issue 27): its key is stable,
compute → store → load gives back what was computed, a stored entry is not computed again, and a run
interrupted after an epoch and rerun ends where an uninterrupted one does. A kind registered without an example
here fails the first test."""
import dataclasses

import numpy as np
import pytest

from mcmia_lib import engine, train
from mcmia_lib.attacks.gonon import GononAttack
from mcmia_lib.defenses.pruning import ADMMPruning
from mcmia_lib.inversion import InversionSpec
from mcmia_lib.loo import Pool, PoolModelSpec
from mcmia_lib.runner import ExperimentSpec, ValidationSpec
from mcmia_lib.sparsity import SparseNet, SparsitySpec
from mcmia_lib.store import Store

CFG = train.TrainConfig(epochs=3, batch_size=50, lr=1e-3, optimizer="adam")
TARGET = ExperimentSpec("digits", "mlp", CFG, n_target=300, nn_attack=None)
EXAMPLES = {
    "": dataclasses.replace(TARGET, pruning=ADMMPruning((0.5, 0.5, 0.5), 1, 1)),
    "val-": ValidationSpec(TARGET, n=100),
    "inv-": InversionSpec(ExperimentSpec("digits", "lomurno_cnn", CFG, width=0.25, n_target=300, nn_attack=None),
                          "Conv1", epochs=2, patience=2, n_train=150, n_val=100, n_examples=2),
    "sp-": SparsitySpec(SparseNet("imp", prunings=1), CFG, dataset="digits", model="mlp", part=300, val=50,
                        attack=GononAttack(epochs=2, hidden=((16,),), lrs=(1e-3,), draws=1)),
    "loo-": PoolModelSpec(Pool("digits", 300, 20, 2), "mlp", CFG, 0, holdout=20),
}


def test_every_registered_kind_has_an_example_and_one_import_registers_them_all():
    import subprocess
    import sys
    alone = subprocess.run([sys.executable, "-c", "from mcmia_lib import engine; print(sorted(engine.prefixes()))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert alone == str(sorted(EXAMPLES))  # the engine alone knows every kind (after `import grid` it lacked sp-)
    assert set(engine.prefixes()) == set(EXAMPLES)
    assert all(engine.key(s).startswith(p) and engine.is_key(engine.key(s)) for p, s in EXAMPLES.items())
    assert not engine.is_key("zz-0123456789abcdef") and not engine.is_key("0123456789abcdeg")


class _Stop(train.Hook):
    def after_epoch(self, epoch, model, record):
        if epoch == 1:
            raise KeyboardInterrupt


def _same(a, b):
    assert a.key == b.key and a.spec == b.spec
    assert set(a.arrays) == set(b.arrays)
    for k in a.arrays:
        assert np.array_equal(a.arrays[k], b.arrays[k], equal_nan=True), k


@pytest.mark.parametrize("prefix", sorted(EXAMPLES))
def test_the_store_contract_of_every_kind(prefix, tmp_path, monkeypatch):
    spec = EXAMPLES[prefix]
    assert engine.key(spec) == engine.key(dataclasses.replace(spec))  # a key depends on the spec's content only
    monkeypatch.setenv("MCMIA_WEIGHTS", str(tmp_path / "w1"))
    whole = engine.run(spec, Store(tmp_path / "one"))
    again = Store(tmp_path / "one").load(whole.key)
    _same(whole, again)
    kind = engine.kind_of(spec)
    monkeypatch.setitem(engine.kinds(), type(spec), dataclasses.replace(
        kind, compute=lambda *a, **k: pytest.fail("a stored entry was computed again")))
    _same(whole, engine.run(spec, Store(tmp_path / "one")))
    monkeypatch.undo()

    monkeypatch.setenv("MCMIA_WEIGHTS", str(tmp_path / "w2"))
    real, stopped = train._check_hooks, []

    def stop_once(hooks):
        hooks = real(hooks)
        if not stopped:
            stopped.append(True)
            hooks.append(_Stop())
        return hooks
    monkeypatch.setattr(train, "_check_hooks", stop_once)
    other = Store(tmp_path / "two")
    with pytest.raises(KeyboardInterrupt):
        engine.run(spec, other)
    assert stopped and not other.has(whole.key)
    _same(whole, engine.run(spec, other))  # resumed from the epoch checkpoint


def test_entries_record_their_source_and_a_changed_component_is_named_without_moving_the_key(tmp_path, monkeypatch,
                                                                                              capsys):
    from mcmia_lib import cli, grid
    monkeypatch.setenv("MCMIA_WEIGHTS", str(tmp_path / "w"))
    store = Store(tmp_path / "s")
    spec = EXAMPLES["loo-"]
    e = engine.run(spec, store)
    assert e.result["provenance"]["source"] == engine.source_hashes(engine.kind_of(spec))
    assert engine.stale_components("PoolModelSpec", e.result) == [] and grid.stale([spec], store) == []
    monkeypatch.setitem(engine.COMPONENT_SOURCES, "train", ("metrics.py",))  # as if train.py had been edited
    engine._source_hash.cache_clear()
    assert engine.key(spec) == e.key and grid.stale([spec], store) == [(spec, ["train"])]
    cli.list_store(store)
    assert "train" in capsys.readouterr().out.splitlines()[1]
    assert engine.stale_components("PoolModelSpec", {"provenance": {}}) is None  # entries from before: unknown
    engine._source_hash.cache_clear()

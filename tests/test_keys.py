"""Store keys: every stored entry's key recomputes from its spec.json (the check that the keying change kept
the committed store valid), a dataset's content changes the key, the replace of an entry is one step."""
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mcmia_lib import data, engine, inversion, loo, sparsity, store as store_mod  # noqa: F401 (they register their kinds)
from mcmia_lib.paths import REPO_ROOT
from mcmia_lib.runner import ExperimentSpec
from mcmia_lib.store import (RUN_COMPONENTS, SPARSITY_COMPONENTS, TRAINING_COMPONENTS, Store, canonical,
                             spec_key)
from mcmia_lib.train import TrainConfig

COMMITTED = Store(REPO_ROOT / "data" / "results")
COMPONENTS = engine.prefixes()
SPEC = ExperimentSpec("mnist", "lenet5", TrainConfig(epochs=3, batch_size=64, lr=1e-3))


def _prefix(key: str) -> str:
    prefix = max((p for p in COMPONENTS if key.startswith(p)), key=len)
    assert prefix or "-" not in key, f"{key}: its kind is not registered (import the module that registers it)"
    return prefix


@pytest.mark.skipif(not COMMITTED.keys(), reason="no committed results store")
def test_every_committed_entry_recomputes_to_its_key():
    for key in COMMITTED.keys():
        spec = json.loads((COMMITTED.path(key) / "spec.json").read_text())
        prefix = _prefix(key)
        assert prefix + spec_key(spec, COMPONENTS[prefix]) == key, key


def test_a_dataset_copy_with_other_content_gets_other_keys(monkeypatch):
    k = spec_key(SPEC, RUN_COMPONENTS)
    real = data.dataset_fingerprint
    monkeypatch.setattr(data, "dataset_fingerprint", lambda n: "0" * 16 if n == "mnist" else real(n))
    assert spec_key(SPEC, RUN_COMPONENTS) != k
    assert spec_key(replace(SPEC, dataset="fashion_mnist"), RUN_COMPONENTS) == \
        spec_key(replace(SPEC, dataset="fashion_mnist"), RUN_COMPONENTS)
    nested = {"net": canonical(SPEC), "role": "target"}  # fingerprints are found however deep the dataset sits
    monkeypatch.setattr(data, "dataset_fingerprint", real)
    k_nested = spec_key(nested, TRAINING_COMPONENTS)
    monkeypatch.setattr(data, "dataset_fingerprint", lambda n: "1" * 16)
    assert spec_key(nested, TRAINING_COMPONENTS) != k_nested


def test_fingerprint_sees_one_changed_label_and_names_the_reference_copies():
    ds = data.load_dataset("digits")
    other = replace(ds, y_train=ds.y_train.clone())
    other.y_train[0] = (other.y_train[0] + 1) % 10
    assert data.fingerprint(ds) == data.fingerprint(replace(ds, x_train=ds.x_train.clone()))
    assert data.fingerprint(other) != data.fingerprint(ds)
    assert set(data.REFERENCE_FINGERPRINTS) == {"mnist", "fashion_mnist", "cifar10", "digits"}


def test_every_component_enters_the_keys_that_name_it(monkeypatch):
    base = {c: spec_key(SPEC, c) for c in (TRAINING_COMPONENTS, RUN_COMPONENTS, SPARSITY_COMPONENTS)}
    for comp in store_mod.VERSIONS:
        monkeypatch.setitem(store_mod.VERSIONS, comp, 99)
        for comps, k in base.items():
            assert (spec_key(SPEC, comps) != k) == (comp in comps), (comp, comps)
        monkeypatch.undo()
    with pytest.raises(ValueError, match="unknown store components"):
        spec_key(SPEC, ("data", "nope"))


def test_replacing_an_entry_never_leaves_the_key_empty(tmp_path, monkeypatch):
    s = Store(tmp_path)
    s.save("k", {"v": 1}, {"m": 1}, {"a": np.zeros(2)})
    real_rename = os.rename

    def failing_rename(a, b):  # the final rename of the new entry fails (disk full, a kill)
        if Path(b).name == "k" and ".k.tmp-" in str(a) and not str(a).endswith("-old"):
            raise OSError("rename failed")
        return real_rename(a, b)
    monkeypatch.setattr(store_mod, "_exchange", lambda a, b: False)  # the fallback path
    monkeypatch.setattr(store_mod.os, "rename", failing_rename)
    with pytest.raises(OSError):
        s.save("k", {"v": 2}, {"m": 2}, {"a": np.ones(2)})
    assert s.load("k").result == {"m": 1} and s.keys() == ["k"]
    assert [p.name for p in tmp_path.iterdir()] == ["k"]
    monkeypatch.undo()
    assert s.save("k", {"v": 3}, {"m": 3}, {"a": np.ones(2)}).result == {"m": 3}  # renameat2 swap
    assert [p.name for p in tmp_path.iterdir()] == ["k"]

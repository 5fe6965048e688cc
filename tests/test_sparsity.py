import numpy as np
import pytest

from mcmia_lib.attacks.gonon import GononAttack
from mcmia_lib.models.butterfly import ButterflyConv2d
from mcmia_lib.engine import run
from mcmia_lib.sparsity import SparseNet, SparsitySpec, trained_network
from mcmia_lib.train import TrainConfig

CFG = TrainConfig(epochs=3, batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="step")
ATTACK = GononAttack(epochs=3, hidden=((30,),), lrs=(1e-3,), draws=2)


def _spec(net, **kw):
    return SparsitySpec(net, kw.pop("train", CFG), dataset="digits", part=400, val=50, attack=ATTACK, **kw)


def test_imp_rounds_prune_from_the_previous_round_and_keep_its_zeros(tmp_store):
    dense, _, _ = trained_network(_spec(SparseNet("dense")), "target")
    k1, _, _ = trained_network(_spec(SparseNet("imp", prunings=1)), "target")
    k2, hist, _ = trained_network(_spec(SparseNet("imp", prunings=2)), "target")
    weights = lambda m: [w for n, w in m.named_parameters() if n.endswith("weight") and w.dim() > 1]  # noqa
    n = sum(w.numel() for w in weights(dense))
    assert sum(int((w != 0).sum()) for w in weights(k1)) == round(0.8 * n)
    assert sum(int((w != 0).sum()) for w in weights(k2)) == round(0.8 * round(0.8 * n))
    assert all(not ((b != 0) & (a == 0)).any() for a, b in zip(weights(k1), weights(k2)))
    assert 1 <= hist[-1]["best_epoch"] <= CFG.epochs
    cached = sorted(p.name for p in (tmp_store.root.parent / "weights").glob("*.pt"))
    assert len(cached) == 3
    trained_network(_spec(SparseNet("imp", prunings=2)), "target")  # from the cache: nothing new
    assert sorted(p.name for p in (tmp_store.root.parent / "weights").glob("*.pt")) == cached


def test_imp_phases_trained_at_once_equal_rounds_trained_one_by_one(tmp_store, tmp_path, monkeypatch):
    import torch
    from mcmia_lib.defenses.imp import IMP
    phases = IMP(2).phases(CFG, 7)
    assert [(p.name, p.seed) for p in phases] == [("train", 7), ("imp1", 17), ("imp2", 27)]
    for k in (1, 2):
        trained_network(_spec(SparseNet("imp", prunings=k)), "shadow")
    by_rounds = trained_network(_spec(SparseNet("imp", prunings=2)), "shadow")[0].state_dict()
    monkeypatch.setenv("MCMIA_WEIGHTS", str(tmp_path / "fresh"))
    at_once = trained_network(_spec(SparseNet("imp", prunings=2)), "shadow")[0].state_dict()
    assert len(list((tmp_path / "fresh").glob("*.pt"))) == 3
    assert all(torch.equal(by_rounds[k], at_once[k]) for k in by_rounds)


def test_run_sparsity_reports_both_networks_and_the_attacks(tmp_store):
    e = run(_spec(SparseNet("butterfly", segments=2, factors=2)))
    r = e.result
    for role in ("target", "shadow"):
        assert 0.1 < r[role]["test_acc"] <= 1 and r[role]["parameters"] < 272474
    assert r["nonzero_fraction"] < 0.25
    assert {"gonon", "loss", "confidence"} <= set(r["attacks"])
    g = r["attacks"]["gonon"]
    assert g["defense"] == pytest.approx(200 - 200 * g["accuracy"])
    assert len(e.arrays["member"]) == len(e.arrays["score_gonon"]) == 2 * 350
    assert run(_spec(SparseNet("butterfly", segments=2, factors=2))).result == r  # stored


def test_members_score_higher_on_an_overfit_network(tmp_store):
    # 50 members: an over-fit network whose loss AUC is 0.83-0.84 under every CPU kernel family (default, avx2,
    # avx512), far from the bound; with 150 members at lr 0.05 it was 0.60-0.63 and one machine type tipped it.
    spec = SparsitySpec(SparseNet("dense"), TrainConfig(epochs=60, batch_size=32, lr=0.02, momentum=0.9),
                        dataset="digits", part=100, val=50, attack=ATTACK)
    e = run(spec)
    assert e.result["target"]["train_acc"] - e.result["target"]["test_acc"] > 0.1
    loss = e.result["attacks"]["loss"]
    assert loss["auc"] > 0.7
    member = e.arrays["member"].astype(bool)
    assert np.mean(e.arrays["score_loss"][member]) > np.mean(e.arrays["score_loss"][~member])


def test_butterfly_network_has_butterfly_layers_and_bad_nets_are_named(tmp_store):
    m, _, _ = trained_network(_spec(SparseNet("butterfly", segments=1, factors=3),
                                    train=TrainConfig(epochs=1, batch_size=64, lr=0.05)), "shadow")
    assert sum(isinstance(x, ButterflyConv2d) for x in m.modules()) == 6
    with pytest.raises(ValueError, match="need segments and factors"):
        SparseNet("butterfly", segments=2)
    with pytest.raises(ValueError, match="prunings >= 1"):
        SparseNet("imp", prunings=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        SparseNet("lottery")

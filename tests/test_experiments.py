import pytest

from mcmia_lib.experiments import METHODS, mcmia_spec
from mcmia_lib.runner import training_key
from mcmia_lib.store import spec_key

P = dict(dataset="digits", model="mlp", n_target=300, epochs=3, batch_size=32, lr=1e-3, optimizer="adam",
         rates=[0.5, 0.5, 0.5], admm_epochs=1, retrain_epochs=1, rho=1e-3, rho_growth=1.0, minmax_lam=1.0,
         minmax_steps=1, minmax_attack_lr=1e-5, nn_epochs=2)


def test_methods_are_distinct_and_pruning_starts_from_the_baseline():
    specs = {m: mcmia_spec(P, m, seed=0) for m in METHODS}
    assert len({spec_key(s) for s in specs.values()}) == 4
    from dataclasses import replace
    pretrain = replace(specs["pruning+minmax"], pruning=None, minmax=None)
    assert training_key(pretrain) == training_key(specs["baseline"])
    assert specs["pruning+minmax"].pruning == specs["pruning"].pruning
    assert specs["minmax"].minmax.attack_lr == 1e-5 and specs["baseline"].minmax is None


def test_rates_override_and_pretrain_epochs():
    s = mcmia_spec({**P, "pretrain_epochs": 7}, "pruning", 1, rates=[0.1, 0.2, 0.3])
    assert s.pruning.rates == (0.1, 0.2, 0.3) and s.train.epochs == 7 and s.seed == 1
    assert mcmia_spec({**P, "pretrain_epochs": 7}, "baseline", 1).train.epochs == 3


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown method 'prune'"):
        mcmia_spec(P, "prune", 0)

"""Chapters as modules (issue 27): what a chapter shows comes from the store entries its stages name, all of
them and no others, read through ``chapters.Entries``."""
import pytest

from mcmia_lib import chapters, engine, grid
from mcmia_lib.paths import REPO_ROOT
from mcmia_lib.store import Store

COMMITTED = Store(REPO_ROOT / "data" / "results")
# Chapters whose cpu results take minutes to analyse (the strong attacks' bootstraps) or whose cpu grid is still
# computing: checked at the smoke profile, on entries computed in a temporary store.
AT_SMOKE = ("strong_attacks", "comparison")


def _reads(name: str, p, store: Store, monkeypatch) -> tuple[set, set, set]:
    """(keys the stages name, keys ``results`` read through its ``Entries``, keys loaded from the store while
    ``results`` ran)."""
    named = {engine.key(s) for stage in chapters.module(name).stages(p, store) for s in stage}
    module, made, loaded = chapters.module(name), [], set()

    def entries(stages, store=None):
        e = chapters.entries(stages, store)
        made.append(e)
        return e

    load = Store.load
    monkeypatch.setattr(module, "entries", entries)
    monkeypatch.setattr(Store, "load", lambda self, key: (loaded.add(key), load(self, key))[1])
    module.results(p, store)
    assert len(made) == 1, f"{name}: results builds its Entries {len(made)} times"
    return named, made[0].read, loaded


@pytest.mark.parametrize("name", [n for n in chapters.NAMES if n not in AT_SMOKE])
def test_results_read_exactly_the_entries_the_stages_name_at_cpu(name, monkeypatch):
    p = chapters.read(name, "cpu")
    plan = grid.plan(name, chapters.as_dict(p), COMMITTED)
    assert not plan.missing and not plan.pending, f"{name}: cpu entries missing from the committed store"
    named, read, loaded = _reads(name, p, COMMITTED, monkeypatch)
    assert read == named, (f"{name}: named but not read {sorted(named - read)[:3]}, "
                           f"read but not named {sorted(read - named)[:3]}")
    assert loaded <= named, f"{name}: results loaded entries its stages do not name: {sorted(loaded - named)[:3]}"


@pytest.mark.parametrize("name", AT_SMOKE)
def test_results_read_exactly_the_entries_the_stages_name_at_smoke(name, tmp_store, monkeypatch):
    p = chapters.read(name, "smoke")
    chapters.entries(chapters.module(name).stages(p, tmp_store), tmp_store)  # computes the smoke grid
    named, read, loaded = _reads(name, p, tmp_store, monkeypatch)
    assert read == named, (f"{name}: named but not read {sorted(named - read)[:3]}, "
                           f"read but not named {sorted(read - named)[:3]}")
    assert loaded <= named, f"{name}: results loaded entries its stages do not name: {sorted(loaded - named)[:3]}"


@pytest.mark.parametrize("name", chapters.NAMES)
def test_every_profile_names_its_first_stage(name):
    """Every profile's parameters build the chapter's first stage with entries (an empty stage, e.g. no
    clipping-norm candidates to compare, passes on to the next; the paper profile's entries are not here)."""
    for profile in ("smoke", "cpu", "paper"):
        for stage in chapters.module(name).stages(chapters.read(name, profile), COMMITTED):
            if stage:
                assert all(engine.is_key(engine.key(s)) for s in stage), (name, profile)
                break
        else:
            raise AssertionError(f"{name} at {profile}: no stage names an entry")


def test_entries_refuse_a_spec_the_stages_do_not_name(tmp_store):
    from mcmia_lib.chapters import quickstart
    p = chapters.read("quickstart", "smoke")
    e = chapters.entries(quickstart.stages(p, tmp_store), tmp_store)
    other = next(iter(quickstart.stages(chapters.read("quickstart", "smoke", {"seeds": [5]}))))[0]
    with pytest.raises(KeyError, match="not named by the chapter's stages"):
        e[other]


def test_table_i_gives_the_lenet5_row_its_own_seeds():
    """Issue 28, item 3: five seeds where they are cheap (MNIST / LeNet-5), without the CIFAR-10 CNN's."""
    from dataclasses import replace
    from mcmia_lib.chapters import dp_regularization
    p = chapters.read("dp_regularization", "cpu", {})
    p = replace(p, table_i=replace(p.table_i, lenet_seeds=[0, 1, 2, 3, 4]))
    stage = list(dp_regularization.stages(p, COMMITTED))[1]  # the committed store: nothing computed
    seeds = {}
    for s in stage:
        if getattr(s, "dp", None) is not None and getattr(s, "target_epsilon", None) is None \
                and s.dp.target_epsilon == p.table_i.epsilon:
            seeds.setdefault(s.dataset, set()).add(s.seed)
    assert seeds == {"mnist": {0, 1, 2, 3, 4}, "cifar10": set(p.table_i.seeds)}

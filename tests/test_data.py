import numpy as np
import pytest
import torch

from mcmia_lib import data


def test_partition_disjoint_and_deterministic():
    parts = data.partition(60000, [15000, 15000, 15000, 15000], seed=3)
    allidx = np.concatenate(parts)
    assert len(np.unique(allidx)) == 60000
    again = data.partition(60000, [15000, 15000, 15000, 15000], seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = data.partition(60000, [15000, 15000, 15000, 15000], seed=4)
    assert not np.array_equal(parts[0], other[0])
    with pytest.raises(ValueError, match="cannot draw disjoint parts"):
        data.partition(10, [6, 6], seed=0)


@pytest.mark.parametrize("n_target", [None, 1000])
def test_membership_split(n_target):
    s = data.membership_split(60000, 10000, seed=7, n_target=n_target)
    tt = set(s.target_train.tolist())
    assert len(tt) == (n_target or 60000)
    assert set(s.attack_in) <= tt and set(s.eval_in) <= tt
    assert not set(s.attack_in) & set(s.eval_in)
    assert not set(s.attack_out) & set(s.eval_out)
    assert len(s.eval_in) == len(s.eval_out)  # balanced evaluation set
    assert len(s.attack_in) == len(s.target_train) // 2 and len(s.attack_out) == 5000
    s2 = data.membership_split(60000, 10000, seed=7, n_target=n_target)
    assert all(np.array_equal(getattr(s, f), getattr(s2, f)) for f in s.__dataclass_fields__)
    s3 = data.membership_split(60000, 10000, seed=8, n_target=n_target)
    assert not np.array_equal(s.eval_out, s3.eval_out)


def test_split_bad_size():
    with pytest.raises(ValueError, match="n_target must be in"):
        data.membership_split(100, 100, seed=0, n_target=1000)


def test_digits_loads_as_uint8():
    ds = data.load_dataset("digits")
    assert ds.x_train.dtype == torch.uint8 and ds.x_train.shape[1:] == (1, 8, 8)
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert int(ds.x_train.max()) == 255


def test_mnist_shapes():
    ds = data.load_dataset("mnist")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.y_train.bincount().tolist()[:2] == [5923, 6742]  # official class counts


def test_unknown_and_missing_dataset(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="choose one of"):
        data.load_dataset("svhn")
    monkeypatch.setattr(data, "candidate_roots", lambda: [tmp_path / "nowhere"])
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load_dataset("cifar100")
    assert str(tmp_path / "nowhere") in str(err.value) and "MCMIA_DATA_DIR" in str(err.value)


def test_augment_flip_and_crop_are_exact():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    g = torch.Generator().manual_seed(0)
    out = data.augment(x, flip=True, crop_pad=2, generator=g)
    assert out.shape == x.shape
    for i in range(2):
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        cands = [padded[:, a:a + 5, b:b + 5] for a in range(5) for b in range(5)]
        cands += [c.flip(2) for c in [torch.nn.functional.pad(x[i].flip(2), (2, 2, 2, 2))[:, a:a + 5, b:b + 5]
                                      for a in range(5) for b in range(5)]]
        cands += [torch.nn.functional.pad(x[i].flip(2), (2, 2, 2, 2))[:, a:a + 5, b:b + 5]
                  for a in range(5) for b in range(5)]
        assert any(torch.equal(out[i], c) for c in cands)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(data.augment(x, True, 2, g1), data.augment(x, True, 2, g2))


def test_evaluation_nonmembers_are_a_random_subset_not_the_lowest_indices():
    s = data.membership_split(50000, 10000, seed=0, n_target=2000)  # 1,000 of 5,000 held-out non-members
    assert len(s.eval_out) == 1000 and s.eval_out.max() > 9000 and s.eval_out.min() < 1000


def test_shadow_split_is_disjoint_sized_and_seeded():
    from mcmia_lib.data import shadow_split
    s = shadow_split(60000, 15000, 1000, seed=0)
    parts = [s.target_train, s.target_val, s.target_test, s.shadow_train, s.shadow_val, s.shadow_test]
    assert [len(p) for p in parts] == [14000, 1000, 15000, 14000, 1000, 15000]
    everything = np.concatenate(parts)
    assert len(np.unique(everything)) == 60000 and everything.min() == 0 and everything.max() == 59999
    again, other = shadow_split(60000, 15000, 1000, seed=0), shadow_split(60000, 15000, 1000, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again.role("target") + again.role("shadow")))
    assert not np.array_equal(s.target_train, other.target_train)
    with pytest.raises(ValueError, match="cannot draw disjoint parts"):
        shadow_split(50000, 15000, 1000, seed=0)
    with pytest.raises(ValueError, match="val must be in"):
        shadow_split(60000, 15000, 15000, seed=0)
    with pytest.raises(ValueError, match="role must be"):
        s.role("attacker")


def test_pooled_puts_the_test_images_after_the_training_images():
    from mcmia_lib.data import load_dataset, pooled
    ds = load_dataset("digits")
    p = pooled(ds)
    n = len(ds.y_train)
    assert torch.equal(p.x_train[:n], ds.x_train) and torch.equal(p.y_train[n:], ds.y_test)
    assert len(p.y_test) == 0 and p.mean == ds.mean


def test_augment_flips_about_half_and_spreads_crop_offsets_uniformly():
    # a unique value per pixel lets each output reveal its flip and offset
    n, h = 4000, 6
    base = torch.arange(h * h, dtype=torch.float32).view(1, 1, h, h) + 1
    x = base.expand(n, 1, h, h).clone()
    g = torch.Generator().manual_seed(1)
    flipped = data.augment(x, flip=True, crop_pad=0, generator=g)
    is_flipped = (flipped == base.flip(3)).flatten(1).all(1)
    assert ((flipped == base).flatten(1).all(1) | is_flipped).all()
    assert 0.45 < is_flipped.float().mean() < 0.55  # augmentation that does nothing gives 0
    cropped = data.augment(x, flip=False, crop_pad=2, generator=g)
    padded = torch.nn.functional.pad(base, (2, 2, 2, 2))[0, 0]
    offsets = {(a, b): padded[a:a + h, b:b + h] for a in range(5) for b in range(5)}
    counts = {k: int((cropped[:, 0] == v).flatten(1).all(1).sum()) for k, v in offsets.items()}
    assert sum(counts.values()) == n and min(counts.values()) > n / 25 * 0.6  # all 25 offsets, about equally

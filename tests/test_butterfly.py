import pytest
import torch
import torch.nn.functional as F

from mcmia_lib.models import build_model, count_parameters
from mcmia_lib.models.butterfly import (ButterflyConv2d, butterfly_segments, debut_chain, factor_matrix,
                                        support)


@pytest.mark.parametrize("shape, n_factors, params", [
    ((16, 144), 2, 416), ((16, 144), 3, 384), ((32, 144), 2, 800), ((32, 288), 3, 832),
    ((64, 288), 2, 2176), ((64, 576), 2, 3200), ((64, 576), 3, 1920)])
def test_debut_chain_parameter_counts(shape, n_factors, params):
    chain = debut_chain(*shape, n_factors)
    assert sum(a * b * c * d for a, b, c, d in chain) == params
    assert chain[0][0] == 1 and chain[-1][3] == 1  # a_1 = d_L = 1: the product can be dense
    assert all(b >= 2 and c >= 2 for _, b, c, _ in chain)
    rows = [a * b * d for a, b, _, d in chain]
    cols = [a * c * d for a, _, c, d in chain]
    assert rows[0] == shape[0] and cols[-1] == shape[1] and rows[1:] == cols[:-1]  # the factors chain
    sizes = [shape[1]] + rows[::-1]
    assert sizes == sorted(sizes, reverse=True)  # monotone: never grows from input to output


@pytest.mark.parametrize("segments, n_factors, percent", [
    (1, 2, 32.26), (1, 3, 29.61), (2, 2, 15.95), (2, 3, 12.73), (3, 2, 11.79), (3, 3, 8.50)])
def test_resnet20_butterfly_fractions_match_002_table_1(segments, n_factors, percent):
    """002 Table 1 prints 32.3 / 29.6 / 15.9 / 12.9 / 11.8 / 8.5 %; (2, 3) computes to 12.73 %."""
    dense = build_model("resnet20", 10, (3, 32, 32))
    assert count_parameters(dense) == 272474
    net = butterfly_segments(build_model("resnet20", 10, (3, 32, 32)), segments, n_factors)
    assert round(100 * count_parameters(net) / 272474, 2) == percent
    replaced = [m for m in net.stages[3 - segments:].modules() if isinstance(m, ButterflyConv2d)]
    assert len(replaced) == 6 * segments and not any(isinstance(m, ButterflyConv2d) for m in net.stem.modules())


def test_factor_product_has_the_butterfly_support_and_drives_the_convolution():
    torch.manual_seed(0)
    conv = ButterflyConv2d(8, 16, 3, stride=2, padding=1, n_factors=2)
    for f in conv.factors:
        dense = factor_matrix(f.detach())
        assert torch.equal(dense != 0, support(*f.shape))  # nonzero exactly on I_a ⊗ 1_bxc ⊗ I_d
        assert torch.equal(dense[support(*f.shape)].sort().values, f.detach().flatten().sort().values)
    w = conv.weight_matrix().detach()
    expected = factor_matrix(conv.factors[0].detach()) @ factor_matrix(conv.factors[1].detach())
    assert torch.allclose(w, expected) and (w != 0).all()  # a chained product is dense
    x = torch.randn(2, 8, 9, 9)
    assert torch.allclose(conv(x), F.conv2d(x, w.reshape(16, 8, 3, 3), stride=2, padding=1), atol=1e-5)
    conv(x).sum().backward()
    assert all(f.grad is not None and f.grad.shape == f.shape for f in conv.factors)


def test_butterfly_init_matches_the_dense_default_variance():
    torch.manual_seed(0)
    w = torch.cat([ButterflyConv2d(64, 64, n_factors=3).weight_matrix().detach().flatten() for _ in range(20)])
    dense_var = 1 / (3 * 64 * 9)  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert 0.8 < w.var().item() / dense_var < 1.25


def test_bad_butterfly_parameters_are_named():
    with pytest.raises(ValueError, match="no monotone chain of 5 non-trivial factors"):
        debut_chain(16, 144, 5)
    with pytest.raises(ValueError, match="segments must be in"):
        butterfly_segments(build_model("resnet20", 10, (3, 32, 32)), 4, 2)
    with pytest.raises(ValueError, match="has no `stages`"):
        butterfly_segments(build_model("lenet5", 10, (1, 28, 28)), 1, 2)


def test_the_square_chain_of_size_16_has_002s_figure_3_supports():
    """002, Sec. 3.2: a square matrix of size N = 2^L factors into L factors with supports
    I_{2^(l-1)} ⊗ [[1, 1], [1, 1]] ⊗ I_{N/2^l}, whose product is full (Figure 3: N = 16)."""
    import torch
    from mcmia_lib.models.butterfly import debut_chain, support
    chain = debut_chain(16, 16, 4)
    product = torch.eye(16)
    for ell, f in enumerate(chain, start=1):
        paper = torch.kron(torch.kron(torch.eye(2 ** (ell - 1)), torch.ones(2, 2)), torch.eye(16 // 2 ** ell)).bool()
        assert torch.equal(support(*f), paper), ell
        assert support(*f).sum(0).max() == 2 and support(*f).sum(1).max() == 2  # two nonzeros per row and column
        product = product @ support(*f).float()
    assert bool((product > 0).all())

from collections import Counter

import pytest

from mcmia_lib import report


def test_reference_records_are_complete_and_unique():
    recs = report.load_reference("mcmia")
    for r in recs:
        assert {"paper", "table", "row", "column", "value"} <= set(r), r
        assert r["paper"] in report.PAPER_FILES
    keys = Counter((r["paper"], r["table"], r["row"], r["column"]) for r in recs)
    assert max(keys.values()) == 1
    for r in recs:
        if "accuracy" in r["column"]:
            assert 0 < r["value"] <= 100, r


def test_papers_disagreements_are_recorded_with_both_values():
    """000 and 001 print different values for a few cells (issue 4): both copies must be present."""
    a = report.reference("CIFAR-100-ResNet-18", "MCMIA-Pruning attack accuracy", table="II")["value"]
    b = report.reference("CIFAR-100-ResNet-18", "MCMIA-Pruning attack accuracy", table="1")["value"]
    assert (a, b) == (74.31, 63.50)


def test_ambiguous_lookup_is_an_error():
    with pytest.raises(KeyError, match="3 reference records"):
        report.reference("MNIST-LeNet-5", "MCMIA-Pruning attack accuracy")

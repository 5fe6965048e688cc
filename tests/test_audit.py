"""The one-run audit (Steinke, Nasr & Jagielski 2023): its p-value, its ε bound and the choice it makes."""
import math

import numpy as np
import pytest
from scipy.stats import binom

from mcmia_lib.report import audit


def q(eps):
    return 1 / (1 + math.exp(-eps))


def test_without_delta_the_p_value_is_the_binomial_tail_and_the_bound_inverts_it():
    assert audit.p_value(1000, 100, 90, 1.0, 0.0) == pytest.approx(binom.sf(89, 100, q(1.0)))
    eps = audit.epsilon_lower_bound(1000, 100, 90, delta=0.0)
    assert binom.sf(89, 100, q(eps)) == pytest.approx(0.05, rel=1e-4)  # the ε rejected at exactly 95 %
    assert audit.epsilon_lower_bound(1000, 100, 50, delta=0.0) == 0.0  # chance accuracy rejects nothing


def test_the_delta_term_is_2_m_delta_times_the_largest_average_of_the_binomial_mass_below_v():
    """Steinke et al. (2023), Theorem 3.3: the δ term, computed here directly from the binomial CDF."""
    m, r, v, eps, delta = 800, 120, 100, 1.5, 1e-4
    qq = q(eps)
    alpha = max((binom.cdf(v - 1, r, qq) - binom.cdf(v - i - 1, r, qq)) / i for i in range(1, v + 1))
    assert audit.p_value(m, r, v, eps, delta) == pytest.approx(binom.sf(v - 1, r, qq) + 2 * m * delta * alpha)


def test_delta_only_loosens_the_bound_and_more_right_guesses_only_tighten_it():
    assert audit.p_value(1000, 100, 90, 2.0, 1e-5) > audit.p_value(1000, 100, 90, 2.0, 0.0)
    bounds = [audit.epsilon_lower_bound(1000, 200, v) for v in (120, 150, 180, 200)]
    assert bounds == sorted(bounds) and bounds[0] < bounds[-1]
    assert audit.largest_certifiable(650) == pytest.approx(audit.epsilon_lower_bound(650, 650, 650))
    assert audit.largest_certifiable(100) < audit.largest_certifiable(650) < 8  # 650 canaries cannot reach ε = 8


def test_randomized_response_at_epsilon_one_is_not_certified_above_one():
    """An ε-DP mechanism (randomized response, each guess right with probability e^ε / (1 + e^ε)) with a perfect
    auditor: the 95 % bound exceeds the true ε in at most 5 % of runs (200 seeded draws)."""
    rng = np.random.default_rng(0)
    above = [audit.epsilon_lower_bound(500, 500, int(rng.binomial(500, q(1.0))), delta=0.0) > 1.0 for _ in range(200)]
    assert np.mean(above) <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 200)  # the coverage, within sampling error


def test_guesses_count_the_right_answers_of_both_ends():
    member = np.array([True, False, True, False, True, False])
    score = np.array([0.9, 0.1, 0.8, 0.7, 0.2, 0.3])
    assert audit.guesses(member, score, 2, 0) == (2, 2)  # 0.9, 0.8: members
    assert audit.guesses(member, score, 2, 2) == (4, 3)  # and 0.1, 0.2 as non-members: one wrong
    with pytest.raises(ValueError, match="0 <= v <= r <= m"):
        audit.p_value(5, 6, 3, 1.0, 0.0)


def test_the_audit_chooses_on_other_targets_than_it_counts():
    rng = np.random.default_rng(1)
    member = rng.random((8, 1000)) < 0.5
    canary = np.zeros(1000, bool)
    canary[:400] = True
    scores = {"leaky": rng.normal(size=member.shape) + 4 * member, "blind": rng.normal(size=member.shape)}
    out = audit.one_run_audit(scores, member, canary)
    assert out["attack"] == "leaky" and out["targets_counted"] == 4 and len(out["bounds"]) == 4
    # the counted targets are the other half: a target that would win the choice alone is never counted
    choose = np.random.default_rng([0, 11]).permutation(8)[:4]
    rigged = {"blind": scores["blind"], "rigged": scores["blind"].copy()}
    rigged["rigged"][choose] = 10.0 * member[choose]
    picked = audit.one_run_audit(rigged, member, canary)
    assert picked["attack"] == "rigged" and picked["max"] < 1.0  # chosen on its half, worthless on the counted one
    assert 0 < out["median"] <= out["largest_certifiable"] and out["canaries"] == 400
    blind = audit.one_run_audit({"blind": scores["blind"]}, member, canary)
    assert blind["max"] < 1.0

"""Membership-inference attacks: threshold scores and the NN attack of 000/001 (after Nasr et al.)."""
from .threshold import SCORES, score, threshold_attack
from .nn_attack import NNAttackConfig, NasrAttackNet, attack_features, train_nn_attack

__all__ = ["SCORES", "score", "threshold_attack", "NNAttackConfig", "NasrAttackNet", "attack_features",
           "train_nn_attack"]

"""Membership-inference attacks: threshold scores, the NN attack of 000/001 (after Nasr et al.) and the
TensorFlow-Privacy-style test of 004."""
from .threshold import SCORES, score, threshold_attack
from .nn_attack import NNAttackConfig, NasrAttackNet, attack_features, train_nn_attack
from .tfp_attack import tfp_attack

__all__ = ["SCORES", "score", "threshold_attack", "NNAttackConfig", "NasrAttackNet", "attack_features",
           "train_nn_attack", "tfp_attack"]

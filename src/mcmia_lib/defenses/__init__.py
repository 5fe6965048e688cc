"""Defenses as training hooks (pruning; later Min-Max, DP-SGD, regularization, butterfly)."""

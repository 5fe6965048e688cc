"""The width multiplier shared by every model (the cpu profile's knob)."""


def scaled(channels: int, width: float) -> int:
    """``channels`` × ``width``, rounded, at least 1."""
    return max(1, int(round(channels * width)))

"""mcmia: membership-inference defenses, measured the same way for all of them."""
__version__ = "0.1.0"

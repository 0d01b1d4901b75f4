"""Tether: an RLHF toolkit that measures whether alignment actually worked."""

__version__ = "0.1.0"

"""Compatibility name: the bound modes live in codec/bounds.py (a registry)."""

from .bounds import MODES, Bound, BoundMode, get_bound_mode, register_bound

__all__ = ["MODES", "Bound", "BoundMode", "get_bound_mode", "register_bound"]

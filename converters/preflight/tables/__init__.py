"""Per-delegate support tables (data). Each module cites the source files its entries come from."""

from __future__ import annotations

from converters.preflight.tables.base import DelegateTable, OpRule, TensorPolicy

__all__ = ["DelegateTable", "OpRule", "TensorPolicy"]

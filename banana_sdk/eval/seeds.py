"""Seeds of the held-out evaluation worlds (shared by ShapeEval and the style detector)."""

from __future__ import annotations

EVAL_SEED_OFFSET = 1_000_000  # evaluation worlds use seeds from here (training uses seed 0)

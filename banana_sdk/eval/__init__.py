"""ShapeEval: scores images against ShapeWorld prompts (attributes, count, identity, Fréchet distance)."""

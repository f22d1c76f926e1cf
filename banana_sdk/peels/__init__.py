"""peels."""

"""The bundle format the SDK owns: manifest types, reading and verifying a bundle directory (docs/DESIGN.md §5)."""

"""Extra layers (test-only)."""

"""Specs whose NumPy kernels once promoted float32 to float64 (test-only)."""

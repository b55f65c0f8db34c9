"""Specs that exist only for the tests: every scalar function the printers know, trainable scalars, layers
that are not activations. The suite proves them, generates them into a temporary folder and runs every
backend's kernels on them (tests/test_extra_specs.py); they are never part of generated/."""

"""From spec/ to generated/: load, check, freeze into a small IR, optimize, lower into kernels, print.

The stages, in order, are named in one function: :func:`codegen.pipeline.build` (its docstring lists the
module of each). The backends are packages under ``codegen/backends/``, listed once in its ``REGISTRY``.
"""

"""From spec/ to generated/: load, check, freeze into a small IR, run the passes, lower into kernels, run each
backend's passes and print, render.

The stages, in order, are named in one function: :func:`codegen.pipeline.build` (its docstring lists the
module of each); each stage is a sub-package (``load``, ``ir``, ``passes``, ``lower``, ``printers``,
``output``, ``verify``, ``report``). The backends are packages under ``codegen/backends/``, listed once in
its ``REGISTRY``.
"""

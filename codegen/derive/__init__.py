"""Backward equations derived from forward equations: reverse-mode rules per DSL node (``rules``), the chain
rule over a spec's equations (``derive``), rewriting toward the paper's forms (``simplify``), and what the
derivation costs and how it compares with a hand-written backward (``compare``)."""

from batchform.codegen.derive.derive import Derivation, Step, derive, derive_checked, needs_derivation
from batchform.codegen.derive.rules import DeriveError

__all__ = ["Derivation", "DeriveError", "Step", "derive", "derive_checked", "needs_derivation"]

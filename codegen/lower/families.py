"""Every spec's kernels, grouped by spec family: what the print stage and the backends read."""

from __future__ import annotations

from dataclasses import dataclass

from batchform.codegen.lower.fused import fused_updates
from batchform.codegen.lower.lower import Kernel, lower, variants
from batchform.codegen.passes.schedule import Optimized


@dataclass
class Family:
    """One spec sub-package (``spec/layers``): its title, its source files and every kernel of its specs."""

    name: str
    title: str
    sources: list[str]
    kernels: list[Kernel]


def lower_all(specs: list[Optimized]) -> list[Family]:
    """Every spec's kernels, grouped by family (sorted by name): forward and backward (or the update), the
    variants every backend prints (:func:`variants`) and the backward kernels fused with each optimizer's
    update (:mod:`codegen.lower.fused`)."""
    grouped: dict[str, Family] = {}
    lowered = {optimized.loaded.name: lower(optimized) for optimized in specs}
    # Optimizer updates (of a parameter θ by its gradient); a running-statistics update is not fused.
    updates = [f for kernels in lowered.values() for f in kernels if f.facts.kind == "update" and f.in_place
               and any(a.name == "theta" for a in f.arguments)]
    for loaded in (optimized.loaded for optimized in specs):
        family = grouped.get(loaded.family)
        if family is None:
            family = grouped[loaded.family] = Family(loaded.family, loaded.family_title or loaded.family, [], [])
        if loaded.path not in family.sources:
            family.sources.append(loaded.path)
        kernels = lowered[loaded.name]
        kernels = kernels + variants(loaded, kernels)
        family.kernels.extend(kernels + fused_updates(kernels, updates))
    return [grouped[k] for k in sorted(grouped)]


def by_spec(families: list[Family]) -> dict[str, list[Kernel]]:
    """Spec name → every kernel generated from it, in order."""
    out: dict[str, list[Kernel]] = {}
    for family in families:
        for f in family.kernels:
            out.setdefault(f.spec, []).append(f)
    return out

"""Optimizer updates. Each equation rebinds a name, in order: ``Delta`` in the second equation of momentum is
the velocity the first equation just computed (Δ' in the paper)."""

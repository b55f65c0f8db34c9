"""The passes: IR → IR, shared by every backend, one module per pass. ``schedule`` names each pass and
declares the list each kind of spec goes through (``PIPELINES``); ``batchform show NAME --ir --after PASS``
prints a spec's IR after any of them.

    rewrite            rules.py              algebraic rules, one function per pattern, to a fixpoint
    cse                cse.py                a subtree used twice is computed once, into a temporary
    fuse               fusion.py             maps inlined into the maps that use them
    stable_forms       idioms.py             log(1 + eᵘ) → Softplus(u), 1/(1 + e⁻ᵘ) → Sigmoid(u)
    inline_cheap_maps  inline_cheap_maps.py  a local map affine in one full-size array: recomputed
    after_fusion       after_fusion.py       factor_rows.py and the rules that see more once maps are fused
    reuse_named        reuse_named.py        an earlier equation's value read by its name
    hoist_invariants   hoist_invariants.py   broadcast-only parts of a map computed once (1 × K)
    share_across_maps  sharing.py            a costly scalar part several maps share computed once
    live               liveness.py           only what the results need; temporaries numbered in order
    steady_cse         schedule.py           an update's CSE: nothing that reads a rebound name
"""

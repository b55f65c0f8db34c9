"""Every proof of a run in one pool: each spec's backward equations (:mod:`codegen.verify.proof`) and its output
tangent (:mod:`codegen.verify.tangent_proof`), the most expensive first (:mod:`codegen.verify.workers`).

Proving the two kinds one after the other left a core idle while the last and longest backward proof ran
(self-attention's), before any tangent could start.
"""

from __future__ import annotations

from batchform.codegen.load.loader import LoadedSpec
from batchform.codegen.verify import workers
from batchform.codegen.verify.proof import SpecProof, proof_tasks
from batchform.codegen.verify.tangent_proof import TangentProof, tangent_tasks


def prove_everything(specs: list[LoadedSpec], use_cache: bool = True, jobs: int | None = None,
                     progress=None) -> tuple[list[SpecProof], list[TangentProof]]:
    """(the proof of every spec's backward equations, in ``specs``' order; the proof of the output tangent of
    every spec that has tangent equations), each from the cache where its spec is unchanged. ``progress`` is
    called with each backward proof as it is found or ends."""
    proofs, proof_todo = proof_tasks(specs, use_cache)
    tangents, tangent_todo = tangent_tasks(specs, use_cache)
    if progress:
        for proof in proofs.values():
            progress(proof)

    def done(key: str, result) -> None:
        if key.startswith("proof:"):
            proofs[result.name] = result
            if progress:
                progress(result)
        else:
            tangents[result.spec] = result

    workers.run([*proof_todo, *tangent_todo], jobs, done)
    return ([proofs[s.name] for s in specs], [tangents[s.name] for s in specs if s.tangents is not None])

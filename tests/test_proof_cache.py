"""A proof result that cannot be cached is a warning, never a failure: the proofs themselves are kept."""

from __future__ import annotations

import shutil

from batchform.codegen.verify import proof
def test_proofs_survive_a_cache_deleted_or_unwritable_while_they_run(loaded_specs, tmp_path, monkeypatch, capsys):
    specs = [loaded_specs["relu"], loaded_specs["sigmoid"]]
    cache = tmp_path / "cache" / "proofs"
    monkeypatch.setattr(proof, "CACHE", cache)
    real = proof.prove_spec

    def prove_and_delete_the_cache(loaded):
        result = real(loaded)
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
        (tmp_path / "cache").write_text("a file where the cache folder was")
        return result

    monkeypatch.setattr(proof, "prove_spec", prove_and_delete_the_cache)
    results = proof.prove_all(specs, jobs=1)
    assert [r.ok for r in results] == [True, True] and [r.name for r in results] == ["relu", "sigmoid"]
    err = capsys.readouterr().err
    assert err.count("warning: the proof of") == 2 and "could not be cached" in err
    monkeypatch.setattr(proof, "prove_spec", real)
    (tmp_path / "cache").unlink()
    assert all(r.ok and not r.cached for r in proof.prove_all(specs, jobs=1))
    assert all(r.cached for r in proof.prove_all(specs, jobs=1))

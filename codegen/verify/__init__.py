"""Everything that checks rather than generates: the proofs (``proof``, ``pieces``, ``indexed``, ``atoms``,
``explicit``, ``update_check``), their mutation testing (``mutate``) and the run of every generated kernel
before it is written (``execute``, ``cpp_reference``)."""

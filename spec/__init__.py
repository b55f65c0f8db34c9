"""Layer, loss, softmax and optimizer equations, each written once as SymPy matrix expressions.

Spec modules live in sub-packages (one per family: ``activations``, ``layers``, ``softmax``, ``losses``,
``optimizers``); each defines ``SPECS``, a list of :class:`spec.dsl.Spec`. ``codegen`` finds them by walking
this package, proves them and renders them into every backend.
"""

"""TensorFlow backend: kernels in generated/tensorflow/<family>.py (tf ops, functional, tf.function-safe),
generated/tensorflow/functional.py (a tf.custom_gradient function per spec) and
generated/tensorflow/keras_layers.py (a Keras 3 layer or loss per spec)."""

from codegen.backends import Backend
from codegen.format import ruff
from codegen.printers.tensorflow import TensorFlowPrinter
from codegen.render import python_annotations
from codegen.wrappers import render_wrappers

BACKEND = Backend(
    name="tensorflow",
    title="TensorFlow",
    printer=TensorFlowPrinter,
    family_template="tensorflow/module.py.jinja",
    family_file="{family}.py",
    annotate=python_annotations(array="Tensor", scalar="Scalar"),
    formatter=ruff,
    extra=render_wrappers("tensorflow", {
        "tensorflow/__init__.py.jinja": "__init__.py",
        "tensorflow/functional.py.jinja": "functional.py",
        "tensorflow/keras_layers.py.jinja": "keras_layers.py",
        "tensorflow/csr.py.jinja": "csr.py",
    }),
    order=4,
    # A CSR weight as a tf.sparse.SparseTensor in row-major order: sparse_dense_matmul both ways, gathers.
    storages=("dense", "csr"),
)

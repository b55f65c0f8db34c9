"""TensorFlow backend: kernels in generated/tensorflow/<family>.py (tf ops, functional, tf.function-safe),
generated/tensorflow/functional.py (a tf.custom_gradient function per spec) and
generated/tensorflow/keras_layers.py (a Keras 3 layer or loss per spec)."""

from batchform.codegen.backends.python.backend import PythonBackend
from batchform.codegen.backends.tensorflow.printer import TensorFlowPrinter

BACKEND = PythonBackend(
    name="tensorflow",
    title="TensorFlow",
    requires="tensorflow",
    printer=TensorFlowPrinter,
    family_template="tensorflow/module.py.jinja",
    package_templates={
        "tensorflow/__init__.py.jinja": "__init__.py",
        "tensorflow/functional.py.jinja": "functional.py",
        "tensorflow/keras_layers.py.jinja": "keras_layers.py",
    },
    # Hand-written, copied verbatim: the shape rule, its TensorFlow form with unknown sizes and dtypes, and
    # the CSR checks.
    runtime={"_runtime.py": "python_runtime.py", "_framework.py": "tensorflow/runtime.py",
             "csr.py": "tensorflow/csr_runtime.py"},
    wrapped=True,
    array="Tensor",
    scalar="Scalar",
    # A CSR weight as a tf.sparse.SparseTensor in row-major order: sparse_dense_matmul both ways, gathers.
    storages=("dense", "csr"),
)

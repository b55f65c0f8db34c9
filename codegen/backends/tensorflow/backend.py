"""TensorFlow backend: kernels in generated/tensorflow/<family>.py (tf ops, functional, tf.function-safe),
generated/tensorflow/functional.py (a tf.custom_gradient function per spec) and
generated/tensorflow/keras_layers.py (a Keras 3 layer or loss per spec)."""

from codegen.backends.python import PythonBackend
from codegen.backends.tensorflow.printer import TensorFlowPrinter

BACKEND = PythonBackend(
    name="tensorflow",
    title="TensorFlow",
    printer=TensorFlowPrinter,
    family_template="tensorflow/module.py.jinja",
    package_templates={
        "tensorflow/__init__.py.jinja": "__init__.py",
        "tensorflow/functional.py.jinja": "functional.py",
        "tensorflow/keras_layers.py.jinja": "keras_layers.py",
        "tensorflow/csr.py.jinja": "csr.py",
    },
    # Hand-written, copied verbatim: the shape rule, and its TensorFlow form with unknown sizes and dtypes.
    runtime={"_runtime.py": "python_runtime.py", "_framework.py": "tensorflow/runtime.py"},
    wrapped=True,
    array="Tensor",
    scalar="Scalar",
    # A CSR weight as a tf.sparse.SparseTensor in row-major order: sparse_dense_matmul both ways, gathers.
    storages=("dense", "csr"),
)

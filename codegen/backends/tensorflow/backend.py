"""TensorFlow backend: kernels in generated/tensorflow/<family>.py (tf ops, functional, tf.function-safe),
generated/tensorflow/functional.py (a tf.custom_gradient function per spec) and
generated/tensorflow/keras_layers.py (a Keras 3 layer or loss per spec)."""

from batchform.codegen.backends.python.backend import python_backend
from batchform.codegen.backends.tensorflow.printer import TensorFlowPrinter

# A CSR weight as a tf.sparse.SparseTensor in row-major order: sparse_dense_matmul both ways, gathers.
# _framework.py: the shape rule's TensorFlow form with unknown sizes and dtypes.
BACKEND = python_backend("tensorflow", "TensorFlow", TensorFlowPrinter, requires="tensorflow",
                         wrappers=("functional.py", "keras_layers.py"), array="Tensor", scalar="Scalar",
                         fork_safe=False)

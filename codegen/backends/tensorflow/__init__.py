"""The TensorFlow backend: tf kernels, tf.custom_gradient functions and Keras 3 layers (see backend.py)."""

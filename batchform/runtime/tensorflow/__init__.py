"""The tensorflow backend's runtime side: its array adapter and the files copied into generated/tensorflow/."""

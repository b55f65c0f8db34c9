"""From printed kernels to files: rendering (``render``, ``wrappers``), formatting (``format``), the
generation stamp (``generation``) and atomic writes (``writer``)."""

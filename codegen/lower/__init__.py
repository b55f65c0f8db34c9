"""The lower stage: IR equations → kernels (``lower``), and the backward kernels fused with each update
(``fused``)."""

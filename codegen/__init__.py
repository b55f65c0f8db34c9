"""From spec/ to generated/: load and check specs, prove them, lower them to a small IR, rewrite, print.

Pipeline (one module per stage): ``loader`` → ``proof`` → ``freeze`` (SymPy → IR) → ``passes`` (rewrites,
common subexpressions, element-wise fusion) → ``lower`` (functions) → ``printers/<backend>`` → ``writer``.
"""

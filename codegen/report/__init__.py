"""The proof report (``report``), its MathML (``mathml``) and its templates (``templates/``)."""

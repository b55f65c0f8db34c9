"""The intermediate representation: its nodes (``nodes``) and how a spec's SymPy expressions become them
(``freeze``)."""

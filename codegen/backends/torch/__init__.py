"""The torch backend: see backend.py (what it writes), printer.py and arrays.py."""

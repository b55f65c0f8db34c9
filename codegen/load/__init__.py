"""The load and check stages: spec modules found, imported and checked (``loader``)."""

"""The one exception type users see: a message naming the spec, the equation and the fault."""


class SpecError(Exception):
    """A spec that cannot be loaded, checked, proved or generated."""

"""The language specs are written in — the public name of ``batchform.spec.dsl``.

    from batchform.dsl import Activation, activation_specs, x

Everything the built-in specs use is here: ``matrix``, ``scalar``, ``dims``, ``ones``, ``row_repeat``,
``columns_sum``, ``hadamard``, ``apply``, ``Spec``, ``Activation``, ``activation_specs``, ``sparse``, …
(the very objects of ``batchform.spec.dsl``, not copies).
"""

from batchform.spec import dsl as _dsl

globals().update({name: value for name, value in vars(_dsl).items() if not name.startswith("__")})
__all__ = list(_dsl.__all__)
__doc__ = f"{__doc__}\n{_dsl.__doc__ or ''}"

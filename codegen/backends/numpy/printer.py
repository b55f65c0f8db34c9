"""NumPy: the scalar printer's defaults are NumPy's own spellings (erf, erfc, expit and xlogy from
scipy.special).

Results keep the dtype of the inputs (float32 stays float32): NumPy 2 promotes a float32 array by a NumPy
float64 scalar (``np.sqrt(K)``) and by an integer array (``np.where(Z <= 0, 0, 1)``), but not by a Python
number. So a function of plain numbers (sizes, hyperparameters) is computed by ``math`` (a Python float), a
map whose every value is a constant is ``np.full_like`` of an argument, and ones, identities and constant
maps take the dtype of the first matrix argument.
"""

from batchform.codegen.printers.python import PythonArrayPrinter
from batchform.codegen.printers.scalar import ATOM, ScalarPrinter, Spelling, table, with_numbers
from batchform.codegen.printers.typed import TypedArrayMixin, TypedScalarMixin


def _numpy_table() -> dict[str, Spelling]:
    """np.* on arrays; on plain numbers the ``math`` module (a Python float does not promote float32)."""
    arrays = table("np", erf="scipy.special.erf({0})", erfc="scipy.special.erfc({0})")
    numbers = {"Abs": "abs({0})", "sign": "((({0}) > 0) - (({0}) < 0))", "atan": "math.atan({0})",
               "asinh": "math.asinh({0})"}
    return with_numbers(arrays, numbers)


class NumPyScalarPrinter(TypedScalarMixin, ScalarPrinter):
    module = "np"
    functions = _numpy_table()
    sigmoid_precedence = ATOM
    full_like = "np.full_like"

    def _number(self, text: str, expr) -> str:
        """A library call on plain numbers as a Python float (NumPy's float64 scalar promotes float32)."""
        return text if self.is_array(expr) else f"float({text})"

    def _print_Sigmoid(self, expr):
        # expit is 1 / (1 + e⁻ᵘ) in one pass, accurate in relative terms in both tails (0.5·tanh(u/2) + 0.5
        # is not: it gives σ(−50) = 0), without overflow warnings, and float32 in, float32 out.
        return self._number(f"scipy.special.expit({self._print(expr.args[0])})", expr)

    def _print_Softplus(self, expr):
        return self._number(f"np.logaddexp(0, {self._print(expr.args[0])})", expr)

    def _print_XLogY(self, expr):
        return self._number(f"scipy.special.xlogy({self._print(expr.args[0])}, {self._print(expr.args[1])})", expr)


class NumPyPrinter(TypedArrayMixin, PythonArrayPrinter):
    module = "np"
    scalar_printer = NumPyScalarPrinter

    def like(self) -> str:
        return f"dtype={self.reference()}.dtype"

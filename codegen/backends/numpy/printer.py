"""NumPy: the scalar printer's defaults are NumPy's own spellings (erf and erfc from scipy.special)."""

from batchform.codegen.printers.python import PythonArrayPrinter
from batchform.codegen.printers.scalar import ScalarPrinter


class NumPyScalarPrinter(ScalarPrinter):
    module = "np"

    def _print_XLogY(self, expr):
        return f"scipy.special.xlogy({self._print(expr.args[0])}, {self._print(expr.args[1])})"


class NumPyPrinter(PythonArrayPrinter):
    module = "np"
    scalar_printer = NumPyScalarPrinter


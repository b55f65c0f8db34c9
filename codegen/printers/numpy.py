"""NumPy: the scalar printer's defaults are NumPy's own spellings (erf and erfc from scipy.special)."""

from codegen.printers.python import PythonArrayPrinter
from codegen.printers.scalar import ScalarPrinter


class NumPyScalarPrinter(ScalarPrinter):
    module = "np"

    def _print_XLogY(self, expr):
        return f"scipy.special.xlogy({self._print(expr.args[0])}, {self._print(expr.args[1])})"


class NumPyPrinter(PythonArrayPrinter):
    module = "np"
    scalar_printer = NumPyScalarPrinter

    def body(self) -> list[str]:
        # A CSR argument is validated before any product reads its indices (scipy's do not check them).
        checks = [f"check_csr({self.function.name!r}, {a.name!r}, {a.name})" for a in self.function.arguments
                  if a.storage == "csr"]
        return checks + super().body()

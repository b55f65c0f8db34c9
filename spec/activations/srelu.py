"""SReLU with trainable (a_l, t_l, a_r, t_r); initial values (0, 0, 0, 1).

srelu(x) = t_l + a_l(x − t_l) if x ≤ t_l; x if t_l < x < t_r; t_r + a_r(x − t_r) if x ≥ t_r.
The first case wins where they overlap; the partial derivatives follow the same case order.
"""
from sympy import Piecewise

from batchform.dsl import Activation, activation_specs, scalar, x

al, tl, ar, tr = scalar("al"), scalar("tl"), scalar("ar"), scalar("tr")

srelu = Activation(
    "srelu", "SReLU",
    f=Piecewise((tl + al * (x - tl), x <= tl), (x, x < tr), (tr + ar * (x - tr), True)),
    df=Piecewise((al, x <= tl), (1, x < tr), (ar, True)),
    params=(al, tl, ar, tr), trainable=(al, tl, ar, tr),
    partials={
        al: Piecewise((x - tl, x <= tl), (0, True)),
        tl: Piecewise((1 - al, x <= tl), (0, True)),
        ar: Piecewise((0, x <= tl), (0, x < tr), (x - tr, True)),
        tr: Piecewise((0, x <= tl), (0, x < tr), (1 - ar, True)),
    },
    sample={"al": (0.05, 0.5), "tl": (-1.0, -0.2), "ar": (0.05, 0.5), "tr": (0.2, 1.0)},
    init={"al": 0, "tl": 0, "ar": 0, "tr": 1},
    paper="§ SReLU layer: Dal = 1ᵀ(DY ⊙ Al)1, Dtl = 1ᵀ(DY ⊙ Tl)1, Dar = 1ᵀ(DY ⊙ Ar)1, Dtr = 1ᵀ(DY ⊙ Tr)1",
)

SPECS = activation_specs(srelu)

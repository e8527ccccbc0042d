#!/usr/bin/python3
"""Rational fits for the GELU kernels in kernels.wat (odd functions as u*P(u^2)/Q(u^2), Q(0) = 1).

Development aid, not part of the build (needs Debian's python3-numpy and python3-scipy):
    /usr/bin/python3 src/kernels/erf-fit.py          # erf(u) on |u| <= 3.92 (forward)
    /usr/bin/python3 src/kernels/erf-fit.py --grad   # Phi(x) + x*phi(x) - 1/2 on |x| <= 6 (backward)
prints the float32 coefficients, the fit's max |error| in double precision, and the
max error of a float32 Horner evaluation on [-12, 12] (forward: the GELU's, relative
to max(1, |x|); backward: the derivative's). Linearised least squares for
P - f*(Q - 1) = f (f = target(u)/u, s = u^2), reweighted towards the minimax of the
error (Lawson).
"""
import sys
import numpy as np
from scipy.special import erf

GRAD = '--grad' in sys.argv


def dgelu(x):
    return 0.5 * (1 + erf(x / np.sqrt(2))) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)


U, DP, DQ = (6.0, 8, 8) if GRAD else (3.92, 5, 5)
target = (lambda v: dgelu(v) - 0.5) if GRAD else erf
u = np.linspace(1e-6, U, 40000 if GRAD else 20000)
s = u * u
f = target(u) / u
w = np.ones_like(s)
for _ in range(40 if GRAD else 30):
    A = np.hstack([np.vander(s, DP + 1, increasing=True), -(f[:, None] * np.vander(s, DQ + 1, increasing=True)[:, 1:])])
    sol, *_ = np.linalg.lstsq(A * w[:, None], f * w, rcond=None)
    p, q = sol[:DP + 1], np.concatenate([[1.0], sol[DP + 1:]])
    err = np.polyval(p[::-1], s) / np.polyval(q[::-1], s) - f
    w = w * np.sqrt(np.abs(err * u if GRAD else err / f) + (1e-14 if GRAD else 1e-12))
    w = w / w.mean()
uu = np.linspace(0, U, 200001)
print('max |error| (float64):', np.max(np.abs(uu * np.polyval(p[::-1], uu * uu) / np.polyval(q[::-1], uu * uu) - target(uu))))
p32, q32 = p.astype(np.float32), q.astype(np.float32)
print('P:', [repr(float(v)) for v in p32])
print('Q:', [repr(float(v)) for v in q32])
f32 = np.float32
x = np.linspace(-12, 12, 2000001).astype(np.float32)
v = np.clip(x if GRAD else x * f32(np.sqrt(0.5)), f32(-U), f32(U)).astype(np.float32)
ss = (v * v).astype(np.float32)
P, Q = p32[-1], q32[-1]
for k in range(DP - 1, -1, -1):
    P = (P * ss + p32[k]).astype(np.float32)
for k in range(DQ - 1, -1, -1):
    Q = (Q * ss + q32[k]).astype(np.float32)
xd = x.astype(np.float64)
if GRAD:
    g = (f32(0.5) + v * P / Q).astype(np.float32)
    print("GELU' max |error| in float32:", np.abs(g - dgelu(xd)).max())
else:
    g = (x * (f32(0.5) + f32(0.5) * (v * P / Q))).astype(np.float32)
    print('GELU max error / max(1,|x|) in float32:', (np.abs(g - xd * 0.5 * (1 + erf(xd / np.sqrt(2)))) / np.maximum(1, np.abs(xd))).max())

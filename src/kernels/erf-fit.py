#!/usr/bin/python3
"""Fit of erf(u) ~ u*P(u^2)/Q(u^2), Q(0) = 1, on |u| <= 3.92 for the GELU kernel in kernels.wat.

Development aid, not part of the build (needs Debian's python3-numpy and python3-scipy):
    /usr/bin/python3 src/kernels/erf-fit.py
prints the float32 coefficients, the fit's max |error| in double precision, and the
GELU's max error of a float32 Horner evaluation relative to max(1, |x|) on [-12, 12].
Linearised least squares for P - f*(Q - 1) = f (f = erf(u)/u, s = u^2), reweighted
towards the minimax of the relative error (Lawson).
"""
import numpy as np
from scipy.special import erf

U, DP, DQ = 3.92, 5, 5
u = np.linspace(1e-6, U, 20000)
s = u * u
f = erf(u) / u
w = np.ones_like(s)
for _ in range(30):
    A = np.hstack([np.vander(s, DP + 1, increasing=True), -(f[:, None] * np.vander(s, DQ + 1, increasing=True)[:, 1:])])
    sol, *_ = np.linalg.lstsq(A * w[:, None], f * w, rcond=None)
    p, q = sol[:DP + 1], np.concatenate([[1.0], sol[DP + 1:]])
    rel = (np.polyval(p[::-1], s) / np.polyval(q[::-1], s) - f) / f
    w = w * np.sqrt(np.abs(rel) + 1e-12)
    w = w / w.mean()
uu = np.linspace(0, U, 200001)
print('max |erf error| (float64):', np.max(np.abs(uu * np.polyval(p[::-1], uu * uu) / np.polyval(q[::-1], uu * uu) - erf(uu))))
p32, q32 = p.astype(np.float32), q.astype(np.float32)
print('P:', [repr(float(v)) for v in p32])
print('Q:', [repr(float(v)) for v in q32])
f32 = np.float32
x = np.linspace(-12, 12, 2000001).astype(np.float32)
v = np.clip(x * f32(np.sqrt(0.5)), f32(-U), f32(U)).astype(np.float32)
ss = (v * v).astype(np.float32)
P, Q = p32[-1], q32[-1]
for k in range(DP - 1, -1, -1):
    P = (P * ss + p32[k]).astype(np.float32)
for k in range(DQ - 1, -1, -1):
    Q = (Q * ss + q32[k]).astype(np.float32)
g = (x * (f32(0.5) + f32(0.5) * (v * P / Q))).astype(np.float32)
xd = x.astype(np.float64)
err = np.abs(g - xd * 0.5 * (1 + erf(xd / np.sqrt(2)))) / np.maximum(1, np.abs(xd))
print('GELU max error / max(1,|x|) in float32:', err.max())

"""Scheduled Checkpoint Distillation (SCD) with Adaptive Weighting (AW).

Importing the package pins the CPU kernels to one numerical path before torch loads
(``scd.core.numerics``); ``SCD_NATIVE_KERNELS=1`` turns that off.
"""
from scd.core.numerics import pin as _pin

_pin()

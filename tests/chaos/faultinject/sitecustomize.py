"""Applies one faulty variant of the reference stack in the process that runs it, for tests.

Put this folder on PYTHONPATH and set OMNIDRILL_FAULT=<name> in the environment of the
process that runs the reference stack: the variant of that name (omnidrill_variants.py) is
patched in before the stack starts. Nothing here ships: the stack itself has no such switch.
"""

from __future__ import annotations

import os

FAULT = os.environ.get("OMNIDRILL_FAULT", "")

if FAULT:
    import omnidrill_variants

    omnidrill_variants.apply(FAULT)

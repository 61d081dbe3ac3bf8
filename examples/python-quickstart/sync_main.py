"""The blocking host: the same calls without asyncio (the fastest path for scripts)."""

import os

from titan_pm.sync import ProcessManager

HERE = os.path.dirname(os.path.abspath(__file__))

with ProcessManager() as pm:
    calc = pm.spawn(os.path.join(HERE, "calculator.py"))
    print("add(5, 3) =", calc.add(5, 3))
    print("slow_square(7) =", calc.with_options(timeout=2.0).slow_square(7))

"""timed(): one dispatch replayed from a plan (the attention probes' timing)."""
import time

import numpy as np

from pyscript_app.gpu.executor import run_sync


def timed(ex, kernel, bufs, dims, over, reps=20):
    ex.begin_plan()
    ex.dispatch(kernel, bufs, dims, overrides=over)
    plan = ex.end_plan()
    ex.submit()
    run_sync(ex.read(bufs[-1], 4))
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            ex.replay(plan)
        ex.submit()
        run_sync(ex.read(bufs[-1], 4))
        runs.append((time.perf_counter() - t0) * 1e3 / reps)
    return float(np.median(runs))

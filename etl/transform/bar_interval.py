"""A series' bar interval, inferred from its open times."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from etl.core.intervals import interval_from_ms


def infer_interval(open_times_ms: npt.NDArray[np.int64]) -> str | None:
    """The most common step between distinct sorted timestamps, if it is a known interval.

    Missing bars make some steps larger, never smaller, so the mode survives gaps.
    """
    times = np.unique(open_times_ms)
    if times.size < 2:
        return None
    steps, counts = np.unique(np.diff(times), return_counts=True)
    return interval_from_ms(int(steps[np.argmax(counts)]))

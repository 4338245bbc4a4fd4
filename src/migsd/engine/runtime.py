"""Helpers the generated engine code calls; each works on whole arrays with a leading run axis.

Semantics follow pysd's ``py_backend.functions`` (Vensim's, as pysd reads them),
vectorised: where pysd branches on a scalar, these use ``np.where``.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ModelError

SMALL_VENSIM = 1e-6


def _full(value, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` broadcast to ``(runs, *shape)``; the run axis stays 1 when the value has none."""
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        return np.full((1,) + shape, float(array))
    return np.broadcast_to(array, (array.shape[0],) + shape)


def _rows(*values) -> int:
    """Length of the run axis shared by ``values`` (numbers count as 1)."""
    rows = 1
    for value in values:
        if isinstance(value, np.ndarray) and value.ndim:
            rows = max(rows, value.shape[0])
    return rows


def _held(entry, time, value):
    """A forced variable: (values, mask of the elements held[, time from which they are held]) over its equation."""
    if len(entry) > 2 and time < entry[2] - SMALL_VENSIM:
        return value
    return np.where(entry[1], entry[0], value)


def _xidz(numerator, denominator, fallback):
    return np.where(np.abs(denominator) < SMALL_VENSIM, fallback, numerator / denominator)


def _zidz(numerator, denominator):
    return np.where(np.abs(denominator) < SMALL_VENSIM, 0.0, numerator / denominator)


def _quantum(a, b):
    return np.where(b < SMALL_VENSIM, a, b * np.trunc(a / b))


def _modulo(x, m):
    return x - _quantum(x, m)


def _step(time, dt, value, start):
    return value * (time + dt / 2 > start)


def _ramp(time, dt, slope, start, finish=None):
    final = time if finish is None else np.minimum(finish, time)
    return (time + SMALL_VENSIM > start) * slope * (final - start)


def _pulse(time, dt, start, width):
    return np.where((start - SMALL_VENSIM <= time) & (time < start + width), 1.0, 0.0)


def _pulse_train(time, dt, start, repeat, width, end):
    active = (start <= time) & (time < end)
    phase = np.where(repeat > 0, np.mod(time - start + SMALL_VENSIM, np.where(repeat > 0, repeat, 1.0)), np.inf)
    return np.where(active & (phase < width), 1.0, 0.0)


def _lookup(x, xs, ys, kind: str = "interpolate"):
    """Table lookup on whole arrays; ``xs``/``ys`` have the table points on their last axis.

    Outside the table the end values are held (Vensim's lookups), or extended along
    the end segments for ``extrapolate``. Tables shorter than the longest in a
    subscripted lookup are padded by repeating their last point.
    """
    x = np.asarray(x, dtype=float)
    shape = np.broadcast_shapes(x.shape, xs.shape[:-1], ys.shape[:-1])
    x = np.broadcast_to(x, shape)
    xs = np.broadcast_to(xs, shape + xs.shape[-1:])
    ys = np.broadcast_to(ys, shape + ys.shape[-1:])
    points = xs.shape[-1]
    if points == 1:
        return ys[..., 0].copy()
    above = np.sum(xs <= x[..., None], axis=-1)
    if kind == "hold_backward":
        index = np.clip(above - 1, 0, points - 1)
        return np.take_along_axis(ys, index[..., None], -1)[..., 0]
    right = np.clip(above, 1, points - 1)
    left = right - 1
    x0 = np.take_along_axis(xs, left[..., None], -1)[..., 0]
    x1 = np.take_along_axis(xs, right[..., None], -1)[..., 0]
    y0 = np.take_along_axis(ys, left[..., None], -1)[..., 0]
    y1 = np.take_along_axis(ys, right[..., None], -1)[..., 0]
    width = x1 - x0
    safe = np.where(width > 0, width, 1.0)
    inside = np.where(width > 0, y0 + (y1 - y0) * (x - x0) / safe, y1)
    first_x, first_y = xs[..., 0], ys[..., 0]
    last_x = np.max(xs, axis=-1)
    last_y = ys[..., -1]
    if kind == "extrapolate":
        low_slope = (ys[..., 1] - ys[..., 0]) / np.where(xs[..., 1] > xs[..., 0], xs[..., 1] - xs[..., 0], 1.0)
        high_slope = (y1 - y0) / safe
        below = first_y + low_slope * (x - first_x)
        beyond = last_y + high_slope * (x - last_x)
    else:
        below, beyond = first_y, last_y
    return np.where(x < first_x, below, np.where(x > last_x, beyond, inside))


def _lookup_grid(x, grid: np.ndarray, ys: np.ndarray):
    """Table lookup where every element shares the points ``grid`` (the usual case): ends held."""
    if np.ndim(x) == 0:
        x = float(x)
        if x <= grid[0]:
            return ys[..., 0]
        if x >= grid[-1]:
            return ys[..., -1]
        j = int(np.searchsorted(grid, x, side="right")) - 1
        return ys[..., j] + (ys[..., j + 1] - ys[..., j]) * ((x - grid[j]) / (grid[j + 1] - grid[j]))
    x = np.asarray(x, dtype=float)
    points = grid.size
    if points == 1:
        return np.broadcast_to(ys[..., 0], np.broadcast_shapes(x.shape, ys.shape[:-1])).copy()
    clipped = np.clip(x, grid[0], grid[-1])
    right = np.clip(np.searchsorted(grid, clipped, side="right"), 1, points - 1)
    left = right - 1
    shape = np.broadcast_shapes(x.shape, ys.shape[:-1])
    full = np.broadcast_to(ys, shape + (points,))
    y0 = np.take_along_axis(full, np.broadcast_to(left, shape)[..., None], -1)[..., 0]
    y1 = np.take_along_axis(full, np.broadcast_to(right, shape)[..., None], -1)[..., 0]
    return y0 + (y1 - y0) * ((clipped - grid[left]) / (grid[right] - grid[left]))


def _lookup_grid_steps(times, grid: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """:func:`_lookup_grid` at every time step at once (leading axis: the step), with the same arithmetic.

    For lookups of time alone: one vectorised call before the loop instead of a
    scalar call per step.
    """
    x = np.asarray(times, dtype=float)
    first, last = ys[..., 0], ys[..., -1]
    if grid.size == 1:
        return np.broadcast_to(first, x.shape + first.shape).copy()
    j = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, grid.size - 2)
    share = (x - grid[j]) / (grid[j + 1] - grid[j])
    inside = np.moveaxis(ys[..., j] + (ys[..., j + 1] - ys[..., j]) * share, -1, 0)
    where = x.reshape(x.shape + (1,) * first.ndim)
    return np.where(where <= grid[0], first, np.where(where >= grid[-1], last, inside))


def _series_at(time: float, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A value given as points over time (last axis of ``values``): linear, ends held."""
    if time <= times[0]:
        return values[..., 0]
    if time >= times[-1]:
        return values[..., -1]
    j = int(np.searchsorted(times, time, side="right")) - 1
    slope = (values[..., j + 1] - values[..., j]) / (times[j + 1] - times[j])
    return slope * (time - times[j]) + values[..., j]


def _stack(value, stages: int, rows: int, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` repeated over ``stages`` stages: an array (stage, run, *shape)."""
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        array = array.reshape((1,) * (1 + len(shape)))
    return np.array(np.broadcast_to(array, (stages, max(rows, array.shape[0])) + shape))


def _stage_count(variable: str, order) -> int:
    values = np.unique(np.asarray(order, dtype=float))
    if values.size != 1 or values[0] < 1:
        raise ModelError(f"'{variable}': the order must be one number of at least 1 for every run, got {values.tolist()}")
    if values[0] != int(values[0]):
        warnings.warn(f"{variable}\nCasting order from {values[0]} to {int(values[0])}", RuntimeWarning, stacklevel=2)
    return int(values[0])


def _delay_order(variable: str, order, dt: float, delay_time) -> int:
    """The number of stages pysd gives a delay: lowered while order x TIME STEP exceeds the delay time."""
    given = _stage_count(variable, order)
    stages = given
    shortest = float(np.min(delay_time))
    while stages * dt > shortest and stages > 1:
        stages -= 1
    if stages != given:
        warnings.warn(
            f"{variable}\nDelay time very small, casting delay order from {given} to {stages}",
            RuntimeWarning,
            stacklevel=2,
        )
    return stages


def _fixed_delay_length(variable: str, delay_time, dt: float) -> int:
    values = np.unique(np.asarray(delay_time, dtype=float))
    if values.size != 1:
        raise ModelError(f"'{variable}': DELAY FIXED needs one delay time for every run, got {values.tolist()}")
    steps = max(float(values[0]) / dt, 1.0)
    return int(round(steps + SMALL_VENSIM))


def _finite_rows(rows: int, *arrays) -> np.ndarray:
    """Per run, whether every value of ``arrays`` (each with a leading run axis of 1 or ``rows``) is finite."""
    ok = np.ones(rows, dtype=bool)
    for array in arrays:
        values = np.asarray(array)
        if values.ndim == 0:
            ok &= bool(np.isfinite(values))
        else:
            ok &= np.isfinite(values).reshape(values.shape[0], -1).all(axis=1)
    return ok


HELPERS = {
    name: value
    for name, value in globals().items()
    if name.startswith("_") and callable(value) and not name.startswith("__")
}

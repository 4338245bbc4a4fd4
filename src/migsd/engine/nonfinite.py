"""Where a run that turned non-finite (NaN or infinite) broke: the first variable, element and time.

The normal path pays almost nothing for this: the generated ``simulate`` checks
once, after its time loop, that every stock ended finite (a stock that turns NaN
or infinite stays so), and :func:`~migsd.engine.batch.integrate` checks the saved
values, which it holds anyway. Only a run found broken is integrated again, here,
alone or with the other broken runs, keeping every variable at every time step;
the first variable to break is the first non-finite one, at the first step where
any is, in the order the step computes them (so its inputs were still finite).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from .batch import simulation_times
from .codegen import _toposort, variable_kinds

#: Memory the stepwise rerun may take for its saved values; beyond it, it saves every few steps.
DIAGNOSIS_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Breakdown:
    """The first non-finite value of a run."""

    variable: str  # as the .mdl names it
    elements: tuple[str, ...]
    time: float
    value: float
    count: int  # variables non-finite at that time
    exact: bool = True  # False: found at a saved step, so it broke at or before ``time``

    @property
    def where(self) -> str:
        return f"'{self.variable}'" + (f"[{','.join(self.elements)}]" if self.elements else "")

    def describe(self) -> str:
        what = "NaN" if math.isnan(self.value) else ("infinite" if self.value > 0 else "-infinite")
        others = f" ({self.count - 1} more variable(s) non-finite by then)" if self.count > 1 else ""
        when = f"at time {self.time:g}" if self.exact else f"by time {self.time:g}"
        return f"{self.where} is the first variable to turn non-finite: {what} {when}{others}"


def locate(engine, model, values: dict, initial: dict, forced: dict, rows, settings: dict) -> dict[int, Breakdown]:
    """The first non-finite value of each run in ``rows`` (indices into the batch ``values``/``initial``)."""
    rows = [int(r) for r in rows]
    if not rows:
        return {}
    nodes = engine.nodes
    series = frozenset(k for k, v in values.items() if isinstance(v, tuple))
    kinds = variable_kinds(engine.compiled, series)
    outputs = [i for i, n in nodes.items() if kinds[i] in ("constant", "dynamic", "series") and not n.internal]
    deps = {i: set(n.deps) for i, n in nodes.items()}
    constants = _toposort([i for i in outputs if kinds[i] == "constant"], deps, "constants")
    dynamic = _toposort([i for i in outputs if kinds[i] != "constant"], deps, "equations")
    times, _, _ = simulation_times(settings)
    cells = sum(math.prod(nodes[i].shape) for i in dynamic)
    every = max(1, math.ceil(8.0 * len(times) * cells / DIAGNOSIS_BYTES))
    save = [n % every == 0 or n == len(times) - 1 for n in range(len(times))]
    saved = np.asarray([t for t, s in zip(times, save) if s])
    group = max(1, int(DIAGNOSIS_BYTES // max(1.0, 8.0 * len(saved) * cells)))
    simulate = engine.module(series, frozenset(forced), None)["simulate"]
    consts = {k: float(settings[k]) for k in ("initial_time", "final_time", "time_step", "saveper")}
    found = {}
    for begin in range(0, len(rows), group):
        chosen = np.asarray(rows[begin:begin + group])
        P = {k: _pick(v, chosen) for k, v in values.items()}
        I = {k: (_pick(v[0], chosen), v[1]) for k, v in initial.items()}
        F = {k: (_pick(v[0], chosen),) + tuple(v[1:]) for k, v in forced.items()}  # held values may be per run
        out = {i: np.empty((chosen.size,) + nodes[i].shape) for i in constants}
        out.update({i: np.empty((chosen.size, len(saved)) + nodes[i].shape) for i in dynamic})
        with np.errstate(all="ignore"):
            simulate(P, I, F, times, save, out, consts, chosen.size)
        for k, row in enumerate(chosen):
            breakdown = _first(model, nodes, constants, dynamic, out, k, saved, consts["initial_time"], every == 1)
            if breakdown is not None:
                found[int(row)] = breakdown
    return found


def _pick(value, rows: np.ndarray):
    if isinstance(value, tuple):
        knots, frames = value
        return knots, (frames[rows] if frames.shape[0] > 1 else frames)
    return value[rows] if value.shape[0] > 1 else value


def _first(model, nodes, constants, dynamic, out, k, saved, start, exact) -> Breakdown | None:
    bad_constants = [i for i in constants if not np.isfinite(out[i][k]).all()]
    if bad_constants:
        ident = bad_constants[0]
        return _breakdown(model, nodes[ident], out[ident][k], start, len(bad_constants), True)
    first_step = {}
    for ident in dynamic:
        broken = ~np.isfinite(out[ident][k].reshape(len(saved), -1)).all(axis=1)
        if broken.any():
            first_step[ident] = int(np.argmax(broken))
    if not first_step:
        return None
    step = min(first_step.values())
    at_step = [i for i in dynamic if first_step.get(i) == step]  # in the order the step computes them
    ident = at_step[0]
    return _breakdown(model, nodes[ident], out[ident][k, step], float(saved[step]), len(at_step), exact or step == 0)


def _breakdown(model, node, values: np.ndarray, time: float, count: int, exact: bool) -> Breakdown:
    values = np.asarray(values, dtype=float)
    index = tuple(np.argwhere(~np.isfinite(values))[0]) if values.ndim else ()
    try:
        subscripts = model.variable(node.name).subscripts
    except ModelError:  # a name the .mdl layer does not know: reported without elements
        subscripts = ()
    elements = tuple(model.subscripts[s][int(i)] for s, i in zip(subscripts, index)) if len(subscripts) == len(
        index) else ()
    return Breakdown(node.name, elements, round(time, 10), float(values[index]), count, exact)

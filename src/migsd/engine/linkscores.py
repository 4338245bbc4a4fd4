"""Link scores (Loops That Matter) computed inside the batched engine, for every run and element at once.

For an equation ``z = f(x, y, ...)`` the score of the link ``x -> z`` at a time is
``|dx_z / dz| * sign(dx_z / dx)``: ``dx_z`` is the change of ``z`` when ``x`` takes its
new value and every other input keeps its value of the previous time step
(Schoenberg, Davidsen & Eberlein 2020, System Dynamics Review 36(2)). A stock's
rate (its INTEG argument) is scored as such an equation and its change is compared
with the change of the whole rate (the 2023 revision, Schoenberg, Hayward &
Eberlein, SDR 39(2)): the flow-to-stock link carries no ``1/TIME STEP``, so an
isolated loop scores 1 at any time step. Stages of an integer-order SMOOTH are
stocks of their own.

The structure is found once per compiled model: which element of each input each
element of an equation reads (probed by evaluating the equation's generated code on
perturbed random inputs, so no subscript rule is re-implemented here), and a
colouring of each input's elements such that one re-evaluation per colour separates
the elements an equation sums over. The scoring code is then emitted into a variant
of the engine's generated module (``codegen.generate``'s ``extra`` lines), evaluated
at the saved times only, and handed to a reducer as one ``(runs, links + 1)`` array.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .codegen import _toposort, generate, variable_kinds
from .runtime import HELPERS

_STATE_UPDATE = re.compile(r"^n_(?P<s>s\d+) = (?P=s) \+ \((?P<rate>.*)\) \* v_time_step$")
_VALUE = re.compile(r"\bv_(\w+)\b")
_STATE = re.compile(r"\b(s\d+)\b")
_TEMP = re.compile(r"\b((?:c|tmp|r)\d+)\b")
_TIME = re.compile(r"(?<![\w.])time\b")


@dataclass
class Unit:
    """A node of the variable-level graph: a variable that changes over time, or a SMOOTH stage."""

    key: str  # identifier of the variable, or the state's name for a stage
    label: str  # .mdl name
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    value: str  # code of its value at the current step
    stock: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=int))


@dataclass
class Target:
    """An equation whose input links are scored: an auxiliary, or the rate of a stock (or stage)."""

    key: str  # unique: the variable's identifier, or 'rate:<state>'
    unit: str  # the unit whose elements it computes
    shape: tuple[int, ...]
    cells: np.ndarray  # for each element of its value, the element of the unit
    code: list[str]  # statements leaving the value in `_Z`, inputs at the previous step except `_X`
    inputs: list[str]  # units read
    current: str  # code of the value at the current step
    stock: bool = False


@dataclass
class Link:
    """Element-level links from one input to one target, scored by one re-evaluation (one colour)."""

    target: str
    source: str
    mask: np.ndarray | None  # elements of the source moved together (None: all)
    source_cells: np.ndarray  # per link: element of the source
    target_cells: np.ndarray  # per link: element of the target's value
    offset: int = 0  # first column in the link-score array


@dataclass
class LinkStructure:
    """Every scorable element-level link of a compiled model (for one set of series and forced variables)."""

    units: dict[str, Unit]
    targets: dict[str, Target]
    links: list[Link] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(link.source_cells) for link in self.links)

    def edges(self) -> list[tuple[tuple[str, int], tuple[str, int]]]:
        """Element-level edges ((source unit, element), (target unit, element)), in column order."""
        out = []
        for link in self.links:
            target = self.targets[link.target]
            for i, j in zip(link.source_cells, link.target_cells):
                out.append(((link.source, int(i)), (target.unit, int(target.cells[j]))))
        return out


def link_structure(compiled, series: frozenset[str] = frozenset(), forced: frozenset[str] = frozenset(),
                   seed: int = 0) -> LinkStructure:
    """The element-level links of ``compiled``, found by probing each equation's generated code."""
    nodes, states = compiled.nodes, compiled.states
    kind = variable_kinds(compiled, series)
    moving = {i for i, n in nodes.items() if kind[i] in ("dynamic", "series") and not n.internal}
    internal = {i for i, n in nodes.items() if n.internal and kind[i] in ("dynamic", "series")}
    deps = {i: set(n.deps) for i, n in nodes.items()}
    stages = {s: st for s, st in states.items() if not st.is_stock and len(st.update) == 1
              and _STATE_UPDATE.match(st.update[0])}
    units: dict[str, Unit] = {}
    for ident in moving:
        node = nodes[ident]
        units[ident] = Unit(ident, node.name, node.dims, node.shape, f"v_{ident}", stock=node.is_stock)
    stage_number: dict[str, int] = {}
    for s, st in stages.items():
        stage_number[st.owner] = stage_number.get(st.owner, 0) + 1
        owner = nodes[st.owner]
        units[s] = Unit(s, f"{owner.name} (stage {stage_number[st.owner]})", owner.dims[-len(st.shape):]
                        if st.shape else (), st.shape, s, stock=True)

    targets: dict[str, Target] = {}
    for ident in sorted(moving, key=lambda i: nodes[i].order):
        node = nodes[ident]
        if node.is_stock:
            continue
        closure = _internal_closure(ident, deps, internal)
        order = _toposort(sorted(closure, key=lambda i: nodes[i].order), deps, "internal parts")
        # a held (forced) element does not change, so its links score 0 with no holding here
        lines = [line for i in order for line in nodes[i].code] + list(node.code)
        inputs = _inputs(lines, moving, stages, exclude=closure | {ident})
        if not inputs:
            continue
        code = [_rename(line, ident, closure, moving, stages) for line in lines]
        targets[ident] = Target(ident, ident, node.shape, np.arange(units[ident].size), code, inputs, f"v_{ident}")
    for s, st in states.items():
        match = _STATE_UPDATE.match(st.update[0]) if len(st.update) == 1 else None
        if match is None or (not st.is_stock and s not in stages):
            continue
        rate = match["rate"]
        unit = st.owner if st.is_stock else s
        if unit not in units:
            continue
        lines = [f"_Z = {rate}"]
        inputs = _inputs(lines, moving, stages, exclude=set())
        if not inputs:
            continue
        code = [_rename(line, "", set(), moving, stages) for line in lines]
        cells = _cells(units[unit].shape, st.location) if st.is_stock else np.arange(units[s].size)
        targets[f"rate:{s}"] = Target(f"rate:{s}", unit, st.shape, cells, code, inputs, f"_net_{s}", stock=True)

    structure = LinkStructure(units, targets)
    rng = np.random.default_rng(seed)
    namespace_base = _probe_namespace(compiled, kind, units, rng)
    for target in targets.values():
        for source in target.inputs:
            reads = _probe(target, units[source], units, namespace_base, rng)
            for mask, source_cells, target_cells in _colours(reads):
                structure.links.append(Link(target.key, source, mask, source_cells, target_cells))
    offset = 0
    for link in structure.links:
        link.offset = offset
        offset += len(link.source_cells)
    return structure


def _internal_closure(ident: str, deps: dict, internal: set[str]) -> set[str]:
    closure, frontier = set(), [d for d in deps[ident] if d in internal]
    while frontier:
        item = frontier.pop()
        if item in closure:
            continue
        closure.add(item)
        frontier.extend(d for d in deps[item] if d in internal)
    return closure


def _inputs(lines: list[str], moving: set[str], stages: dict, exclude: set[str]) -> list[str]:
    found: list[str] = []
    for line in lines:
        for name in _VALUE.findall(line) + _STATE.findall(line):
            if name in exclude or name in found:
                continue
            if name in moving or name in stages:
                found.append(name)
    return found


def _rename(line: str, target: str, closure: set[str], moving: set[str], stages: dict) -> str:
    """A statement of an equation, rewritten to read its inputs' previous values (``p_``) and write ``_Z``."""
    def value(match):
        name = match.group(1)
        if name == target:
            return "_Z"
        if name in closure:
            return f"_i_{name}"
        if name in moving:
            return f"p_{name}"
        return match.group(0)

    def state(match):
        name = match.group(1)
        return f"p_{name}" if name in stages else name

    line = _VALUE.sub(value, line)
    line = _STATE.sub(state, line)
    line = _TEMP.sub(lambda m: f"_e{m.group(1)}", line)
    return _TIME.sub("p_time", line)


def _cells(shape: tuple[int, ...], location: str) -> np.ndarray:
    grid = np.arange(int(np.prod(shape, dtype=int))).reshape(shape)
    if not location:
        return grid.ravel()
    index = eval(f"np.s_[{location}]", {"np": np})  # the compiler's own index text: ints and slices
    return np.asarray(grid[index]).ravel()


def _probe_namespace(compiled, kind: dict, units: dict, rng) -> dict:
    namespace = {"np": np, **HELPERS, **compiled.tables, "F": {}, "p_time": 1.5, "v_time_step": 0.25,
                 "v_initial_time": 0.0, "v_final_time": 10.0, "v_saveper": 1.0}
    for ident, node in compiled.nodes.items():
        if kind.get(ident) == "constant":
            namespace[f"v_{ident}"] = rng.uniform(0.3, 0.7, (1,) + node.shape)
    for state, st in compiled.states.items():
        if state not in units:
            namespace[state] = rng.uniform(0.3, 0.7, (1,) + st.shape)
    return namespace


def _probe(target: Target, source: Unit, units: dict, base: dict, rng) -> np.ndarray:
    """reads[i, j]: element j of the target's value changes with element i of ``source``."""
    rows = source.size + 1
    program = target.__dict__.get("_program")
    if program is None:
        program = target.__dict__["_program"] = compile("\n".join(target.code), "<link probe>", "exec")
    reads = np.zeros((source.size, int(np.prod(target.shape, dtype=int))), dtype=bool)
    for trial in range(3):
        namespace = dict(base)
        namespace["rows"] = rows
        for name in target.inputs:
            unit = units[name]
            namespace[f"p_{name}"] = rng.uniform(0.3, 0.7, (1,) + unit.shape)
        start = namespace[f"p_{source.key}"]
        moved = np.repeat(start, rows, axis=0).reshape(rows, -1)
        if trial == 2:
            moved[1:][np.arange(source.size), np.arange(source.size)] = np.nan
        else:
            moved[1:][np.arange(source.size), np.arange(source.size)] *= 1.37
        namespace[f"p_{source.key}"] = moved.reshape((rows,) + source.shape)
        namespace["_rows"] = HELPERS["_rows"]
        with np.errstate(all="ignore"):
            exec(program, namespace)
        value = np.broadcast_to(np.asarray(namespace["_Z"], dtype=float), (rows,) + target.shape).reshape(rows, -1)
        changed = ~np.isclose(value[1:], value[:1], rtol=1e-12, atol=0.0, equal_nan=True)
        if trial == 2:
            changed = np.isnan(value[1:]) & ~np.isnan(value[:1])
        reads |= changed
    return reads


def _colours(reads: np.ndarray):
    """Groups of source elements that one re-evaluation can move together: no target element reads two of them."""
    sources = [i for i in range(reads.shape[0]) if reads[i].any()]
    colours: list[tuple[list[int], np.ndarray]] = []
    for i in sources:
        for members, used in colours:
            if not (used & reads[i]).any():
                members.append(i)
                used |= reads[i]
                break
        else:
            colours.append(([i], reads[i].copy()))
    every = len(colours) == 1 and len(colours[0][0]) == reads.shape[0]
    for members, _ in colours:
        mask = None if every else np.isin(np.arange(reads.shape[0]), members)
        source_cells, target_cells = [], []
        for i in members:
            for j in np.flatnonzero(reads[i]):
                source_cells.append(i)
                target_cells.append(j)
        yield mask, np.asarray(source_cells, dtype=int), np.asarray(target_cells, dtype=int)


def scoring_code(structure: LinkStructure, chosen: list[int] | None = None) -> tuple[list[str], list[str], dict]:
    """Lines before the time loop, lines in each step, and the constants they read, scoring ``chosen`` links.

    ``chosen`` lists link columns (of :meth:`LinkStructure.edges`) to score (default:
    all); the scores land in ``_LS[:, k]`` for the k-th chosen column, and the step
    calls ``_reduce(n, _LS)`` at every step marked in ``_score``.
    """
    wanted = None if chosen is None else {c: k for k, c in enumerate(chosen)}
    total = structure.count if chosen is None else len(chosen)
    constants: dict = {}
    pre = ["_LS = None"]
    step: list[str] = []
    needed_targets, needed_sources = set(), set()
    body: list[str] = []
    for number, link in enumerate(structure.links):
        columns = np.arange(link.offset, link.offset + len(link.source_cells))
        if wanted is not None:
            keep = np.asarray([c in wanted for c in columns])
            if not keep.any():
                continue
            into = np.asarray([wanted[c] for c in columns[keep]])
        else:
            keep = np.ones(len(columns), dtype=bool)
            into = columns
        target = structure.targets[link.target]
        source = structure.units[link.source]
        needed_targets.add(target.key)
        needed_sources.add(source.key)
        name = f"_L{number}"
        constants[f"{name}_I"] = link.source_cells[keep]
        constants[f"{name}_J"] = link.target_cells[keep]
        constants[f"{name}_C"] = into
        if link.mask is None:
            body.append(f"_X = {source.value}")
        else:
            constants[f"{name}_M"] = link.mask.reshape((1,) + source.shape)
            body.append(f"_X = np.where({name}_M, {source.value}, p_{source.key})")
        # the equation with this input moved: every statement, reading `_X` for the source
        body.extend(_for_source(line, source.key) for line in target.code)
        tkey = _safe(target.key)
        body.append(f"_ls_put(_LS, {name}_C, _flat(_Z, rows, {target.shape!r})[:, {name}_J] - _P_{tkey}[:, {name}_J], "
                    f"_D_{tkey}[:, {name}_J], _D_{_safe(source.key)}[:, {name}_I])")
    for key in sorted(needed_targets):
        target = structure.targets[key]
        tkey = _safe(key)
        if target.stock:
            state = key.split(":", 1)[1]
            net = _rename_current(target.code[0].replace("_Z = ", "", 1))
            step.append(f"if _score[n] or _before[n]:")
            step.append(f"    _net_{state} = {net}")
    scored = ["if _score[n]:",
              f"    if _LS is None or _LS.shape[0] != rows:",
              f"        _LS = np.ones(({total} + 1, rows))"]
    for key in sorted(needed_targets):
        target = structure.targets[key]
        tkey = _safe(key)
        previous = f"p_net_{key.split(':', 1)[1]}" if target.stock else f"p_{key}"
        scored.append(f"    _P_{tkey} = _flat({previous}, rows, {target.shape!r})")
        scored.append(f"    _D_{tkey} = _flat({target.current}, rows, {target.shape!r}) - _P_{tkey}")
    for key in sorted(needed_sources):
        unit = structure.units[key]
        scored.append(f"    _D_{_safe(key)} = _flat({unit.value}, rows, {unit.shape!r}) - _flat(p_{key}, rows, "
                      f"{unit.shape!r})")
    scored += ["    " + line for line in body]
    scored.append("    _reduce(n, _LS)")
    step += scored
    # the previous step's values, for the next step's changes
    for key in sorted(needed_sources | {structure.targets[t].unit for t in needed_targets}
                      | {t for t in needed_targets if not structure.targets[t].stock}):
        if key in structure.units:
            step.append(f"p_{key} = {structure.units[key].value}")
    for key in sorted(needed_targets):
        if structure.targets[key].stock:
            state = key.split(":", 1)[1]
            step.append(f"if _score[n] or _before[n]:")
            step.append(f"    p_net_{state} = _net_{state}")
    step.append("p_time = time")
    # every input an equation reads at its previous value must exist from the first step
    inputs = sorted({i for t in needed_targets for i in structure.targets[t].inputs})
    for key in inputs:
        if key not in needed_sources:
            step.append(f"p_{key} = {structure.units[key].value}")
    return pre, step, constants


def _safe(key: str) -> str:
    return key.replace(":", "_")


def _for_source(line: str, source: str) -> str:
    line = re.sub(rf"\bp_{re.escape(source)}\b", "_X", line)
    return line


def _rename_current(code: str) -> str:
    """A rate's code reading the current values (its statements were renamed to the previous ones)."""
    code = re.sub(r"\bp_time\b", "time", code)
    return re.sub(r"\bp_(\w+)\b", lambda m: m.group(1) if re.fullmatch(r"s\d+", m.group(1)) else f"v_{m.group(1)}",
                  code)


def _flat(value, rows: int, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    return np.broadcast_to(array, (rows,) + shape).reshape(rows, -1) if shape else \
        np.broadcast_to(array.reshape(-1, 1) if array.ndim else array, (rows, 1))


def _ls_put(scores: np.ndarray, columns: np.ndarray, moved: np.ndarray, change: np.ndarray,
            source_change: np.ndarray) -> None:
    """Link scores |moved / change| * sign(moved / source change); 0 where either change is 0 (no information)."""
    with np.errstate(all="ignore"):
        value = np.abs(moved / change) * np.sign(moved * source_change)
    value[~np.isfinite(value)] = 0.0
    scores[columns] = value.T


def link_module(engine, structure: LinkStructure, series: frozenset[str], forced: frozenset[str],
                chosen: list[int] | None, reduce) -> dict:
    """The engine's module with the scoring lines added; ``reduce(n, scores)`` receives each scored step."""
    pre, step, constants = scoring_code(structure, chosen)
    source = generate(engine.compiled, series, forced, None, extra=(pre, step))
    namespace = {"np": np, **HELPERS, **engine.compiled.tables, **constants, "_flat": _flat, "_ls_put": _ls_put,
                 "_reduce": reduce}
    exec(compile(source, "<migsd link scores>", "exec"), namespace)
    return namespace


#: Bytes of one chunk's read-back buffer values (runs x scored steps and the steps before x cells).
READBACK_BYTES = 256 * 2**20


class KernelScorer:
    """Link scores from the compiled kernel: it integrates, the scoring code reads its values back.

    The kernel copies, at each scored step and the step before it, every place of
    its buffer the scoring code reads (and the constants once); the same lines
    :func:`scoring_code` gives the numpy module then run over those values, as
    they would inside its time loop. So both backends score with one code and
    differ only in who integrates; the scores match the numpy backend's to the
    kernel's rounding. The scoring itself stays numpy: it runs at the saved steps
    only, over every run of a chunk at once.
    """

    def __init__(self, engine, kernel, structure: LinkStructure, series: frozenset[str], chosen: list[int] | None,
                 reduce):
        from .compiler import CONTROL

        self.engine, self.kernel = engine, kernel
        compiled = engine.compiled
        pre, step, constants = scoring_code(structure, chosen)
        self.pre = compile("\n".join(pre), "<migsd link scores>", "exec")
        self.step = compile("\n".join(step), "<migsd link scores>", "exec")
        self.namespace = {"np": np, **HELPERS, **compiled.tables, **constants, "_flat": _flat, "_ls_put": _ls_put,
                          "_reduce": reduce}
        kind = variable_kinds(compiled, series)
        read = sorted(set(re.findall(r"\b(v_\w+|s\d+)\b", "\n".join(pre + step))))
        self.control = [name for name in read if name[2:] in CONTROL]
        self.each_step: dict[str, tuple[int, ...]] = {}
        self.once: dict[str, tuple[int, ...]] = {}
        for name in read:
            if name in self.control or name not in self.kernel.layout:
                continue  # control values come from the run's settings; tables and helpers are not in the buffer
            ident = name[2:] if name.startswith("v_") else None
            shape = self.kernel.layout[name][1]
            if ident is not None and kind.get(ident) == "constant":
                self.once[name] = shape
            else:
                self.each_step[name] = shape
        self.cells = sum(int(np.prod(shape, dtype=int)) for shape in self.each_step.values())

    def chunk_rows(self, steps: int, limit: int) -> int:
        """Runs per kernel call such that the values read back stay within :data:`READBACK_BYTES`."""
        return max(1, min(limit, READBACK_BYTES // max(1, 8 * steps * self.cells)))

    def score(self, P: dict, I: dict, F: dict, rows: int, times, score: np.ndarray, before: np.ndarray,
              consts: dict) -> None:
        """Integrate ``rows`` runs with the kernel and score them at the steps marked in ``score``."""
        from .numba_codegen import run_kernel

        wanted = score | before
        steps = np.flatnonzero(wanted)
        # stored step-major, so that each step's values (read by every statement of the scoring) are contiguous
        slots = {name: np.empty((len(steps), rows, int(np.prod(shape, dtype=int)))).transpose(1, 0, 2)
                 for name, shape in self.each_step.items()}
        slots.update({name: np.empty((rows, int(np.prod(shape, dtype=int)))) for name, shape in self.once.items()})
        with np.errstate(all="ignore"):
            run_kernel(self.kernel, self.engine.compiled, P, I, F, rows, times, wanted, consts, {}, slots)
        namespace = dict(self.namespace)
        namespace.update(rows=rows, _score=score, _before=before)
        namespace.update({name: consts[name[2:]] for name in self.control})
        namespace.update({name: slots[name].reshape((rows,) + shape) for name, shape in self.once.items()})
        with np.errstate(all="ignore"):
            exec(self.pre, namespace)
            for k, n in enumerate(steps):
                namespace["n"], namespace["time"] = int(n), float(times[n])
                for name, shape in self.each_step.items():
                    namespace[name] = slots[name][:, k].reshape((rows,) + shape)  # a view: no copy
                exec(self.step, namespace)


__all__ = ["KernelScorer", "Link", "LinkStructure", "Target", "Unit", "link_module", "link_structure",
           "scoring_code"]

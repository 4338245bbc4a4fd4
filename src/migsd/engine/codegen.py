"""Assemble a compiled model into one Python module, cached by model content, and load it.

The module defines ``simulate(P, I, F, times, save, out, consts, rows)``: constants once,
then the initial values, then the time loop, every variable a local name so
the loop pays no dictionary lookups. Which constants are given as points over
time changes which variables must be recomputed each step, so a variant of the
module is generated per set of such constants (most runs use the plain one).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .compiler import CONTROL, ENGINE_VERSION, CompiledModel, Node, compile_mdl
from .runtime import HELPERS


def _toposort(names: list[str], deps: dict[str, set[str]], what: str,
              compiled: CompiledModel | None = None) -> list[str]:
    """Order ``names`` so each follows its dependencies; .mdl order breaks ties.

    A loop among them (simultaneous equations) raises :class:`ModelError` naming
    its variables as the .mdl does, with their lines, when ``compiled`` is given.
    """
    position = {n: i for i, n in enumerate(names)}
    pending = {n: {d for d in deps[n] if d in position and d != n} for n in names}
    for n in names:
        if n in deps[n]:
            raise _loop_error([n, n], what, compiled)
    ordered, ready = [], sorted((n for n in names if not pending[n]), key=position.get)
    users: dict[str, list[str]] = {n: [] for n in names}
    for n, ds in pending.items():
        for d in ds:
            users[d].append(n)
    import heapq

    heap = [(position[n], n) for n in ready]
    heapq.heapify(heap)
    while heap:
        _, n = heapq.heappop(heap)
        ordered.append(n)
        for user in users[n]:
            pending[user].discard(n)
            if not pending[user]:
                heapq.heappush(heap, (position[user], user))
    if len(ordered) != len(names):
        # every variable left waits on another left: following the first of each wait closes a loop
        stuck = [n for n in names if n not in set(ordered)]
        trail, seen = [stuck[0]], {stuck[0]: 0}
        while True:
            following = min(pending[trail[-1]], key=position.get)
            if following in seen:
                raise _loop_error(trail[seen[following]:] + [following], what, compiled)
            seen[following] = len(trail)
            trail.append(following)
    return ordered


def _loop_error(cycle: list[str], what: str, compiled: CompiledModel | None) -> ModelError:
    """The loop ``cycle`` (first item repeated at the end) in the .mdl's names, with their lines."""
    if compiled is None:
        return ModelError(f"{what}: circular equations among {cycle[:-1]}")
    from ..mdlsource import Problem, SourceError, definition_lines
    from ..names import canonical

    def mdl_name(ident: str) -> str | None:
        if ident in compiled.states:
            ident = compiled.states[ident].owner
        node = compiled.nodes.get(ident)
        if node is None:
            return ident
        return None if node.internal else node.name  # a shared part stands between two of its users

    names = [n for n in map(mdl_name, cycle[:-1]) if n is not None]
    names = [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]] or [cycle[0]]
    while len(names) > 1 and names[-1] == names[0]:
        names.pop()
    try:
        lines = definition_lines(Path(compiled.source).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        lines = {}
    line = {n: lines.get(canonical(n), [0])[0] for n in names}
    remedy = "a loop of equations needs a stock (INTEG) or a delay in it"
    if what == "initial values":
        remedy = "a stock's initial value cannot depend on the stock's own value"
    elif what == "constants":
        remedy = "constants cannot be defined in terms of each other"
    if len(names) == 1:
        message = f"'{names[0]}' is computed from itself (an algebraic loop in the {what}); {remedy}"
        return SourceError(compiled.source, [Problem(names[0], line[names[0]], message, kind="loop")])
    chain = f"'{names[0]}' (line {line[names[0]]}) needs " + ", which needs ".join(
        f"'{n}' (line {line[n]})" for n in names[1:]) + f", which needs '{names[0]}'"
    message = f"simultaneous equations (an algebraic loop in the {what}): {chain}; {remedy}"
    return SourceError(compiled.source, [Problem(names[0], line[names[0]], message, kind="loop")])


@dataclass
class Engine:
    """A compiled model and its generated modules."""

    compiled: CompiledModel
    cache: Path | None = None
    _modules: dict = field(default_factory=dict, repr=False)
    _control_reads: frozenset | None = field(default=None, repr=False)
    _control_code: dict = field(default_factory=dict, repr=False)  # plans and code, made once: every run uses them
    _kernel: object = field(default=None, repr=False)  # the compiled backend's kernel, or why it was refused
    last_backend: str = field(default="", repr=False)  # which backend ran the last integration

    @property
    def nodes(self) -> dict[str, Node]:
        return self.compiled.nodes

    def constants(self) -> list[str]:
        return [i for i, n in self.nodes.items() if n.kind == "constant"]

    @property
    def control_reads(self) -> frozenset[str]:
        """The variables (not control variables) whose values the control variables' equations read."""
        if self._control_reads is None:
            reads = {i: set(n.deps) | set(n.control_deps) for i, n in self.nodes.items()}
            seen, frontier = set(), [d for c in CONTROL if c in reads for d in reads[c]]
            while frontier:
                item = frontier.pop()
                if item not in seen:
                    seen.add(item)
                    frontier.extend(reads[item])
            self._control_reads = frozenset(seen - set(CONTROL))
        return self._control_reads

    def _control_plan(self, explicit: frozenset[str], given: frozenset[str]):
        """What each control variable reads (stopping at the values given), and the order to evaluate them in."""
        key = (explicit, given)
        if key not in self._control_code:
            nodes = self.nodes
            reads = {i: set(n.deps) | set(n.control_deps) for i, n in nodes.items()}
            closure = {}
            for ident in CONTROL:
                seen, frontier = set(), [d for d in reads[ident] if ident not in explicit]
                while frontier:
                    item = frontier.pop()
                    if item in seen:
                        continue
                    seen.add(item)
                    if item not in explicit and item not in given:
                        frontier.extend(reads[item])
                closure[ident] = seen
            needed = set(CONTROL).union(*closure.values())
            order = _toposort(sorted(needed, key=lambda i: nodes[i].order),
                              {i: reads[i] & needed for i in needed}, "control variables")
            self._control_code[key] = (closure, order)
        return self._control_code[key]

    def control_settings(self, given: dict | None = None, explicit: dict | None = None) -> dict[str, float]:
        """INITIAL TIME, FINAL TIME, TIME STEP and SAVEPER: the .mdl's equations, evaluated before the run.

        A control variable may be an expression of constants and of the other control
        variables (``SAVEPER = TIME STEP``, ``FINAL TIME = INITIAL TIME + horizon``).
        ``given`` holds the run's constants (engine inputs: arrays with a leading run
        axis), ``explicit`` control variables set by the caller, which replace their
        equations; the others follow from them. Every control variable must come out
        as one number, the same in every run.
        """
        given, explicit = given or {}, explicit or {}
        nodes = self.nodes
        for ident in CONTROL:
            if ident not in nodes:
                raise ModelError(f"{self.compiled.source}: the .mdl does not define {ident.upper().replace('_', ' ')}")
        closure, order = self._control_plan(frozenset(explicit), frozenset(given) & self.control_reads)
        namespace: dict = {"np": np, **HELPERS, **self.compiled.tables}
        for ident in order:
            if ident in CONTROL and ident in explicit:
                namespace[f"v_{ident}"] = float(explicit[ident])
            elif ident not in CONTROL and ident in given:
                value = given[ident]
                if isinstance(value, tuple):
                    users = [nodes[c].name for c in CONTROL if ident in closure[c]]
                    raise ModelError(
                        f"'{users[0]}' is computed from '{nodes[ident].name}', which is given as points over time; "
                        f"a control variable is one number for the whole run, so give '{nodes[ident].name}' "
                        f"one number")
                namespace[f"v_{ident}"] = value
            else:
                if ident not in self._control_code:
                    self._control_code[ident] = compile("\n".join(nodes[ident].code), f"<{ident}>", "exec")
                exec(self._control_code[ident], namespace)
        settings = {}
        for ident in CONTROL:
            value = np.asarray(namespace[f"v_{ident}"], dtype=float).reshape(-1)
            if not np.all(value == value[0]):
                sources = sorted(nodes[d].name for d in closure[ident] if d in given)
                raise ModelError(
                    f"'{nodes[ident].name}' is computed from {sources}, which differ between runs; a batch shares "
                    f"one time axis, so give them one value for every run (or set {ident} explicitly)")
            settings[ident] = float(value[0])
        return settings

    def module(self, series: frozenset[str] = frozenset(), forced: frozenset[str] = frozenset(),
               keep: frozenset[str] | None = None):
        """The generated module for runs where ``series`` vary over time and ``forced`` are held at given values.

        With ``keep``, only those variables can be saved, and each time step
        computes only what they and the states need.
        """
        key = (series, forced, keep)
        if key not in self._modules:
            source = generate(self.compiled, series, forced, keep)
            namespace = {"np": np, **HELPERS, **self.compiled.tables}
            filename = "<migsd engine>"
            if self.cache is not None:
                kept = ["*"] if keep is None else sorted(keep)
                variant = sorted(series) + ["forced:"] + sorted(forced) + ["keep:"] + kept
                name = "engine.py" if not (series or forced or keep is not None) else f"engine-{_digest(variant)}.py"
                path = self.cache / name
                if not path.exists():
                    _atomic_write(path, source)
                filename = str(path)
            exec(compile(source, filename, "exec"), namespace)
            self._modules[key] = namespace
        return self._modules[key]


    def kernel(self):
        """The compiled (numba) kernel of the model, one for every kind of run; compiled on first use.

        Raises :class:`.numba_codegen.CompiledUnsupported` where the model has a
        construct the kernel cannot write as scalar code; the refusal is
        remembered, so it is tried once per process.
        """
        if self._kernel is None:
            from .numba_codegen import load_kernel

            try:
                # every variable a run can return or hold; a helper only an initial value reads (the argument
                # of INITIAL) is not computed again each time step
                shown = frozenset(i for i, n in self.compiled.nodes.items() if not n.internal)
                self._kernel = load_kernel(self.compiled, self.cache, schedule(self.compiled, keep=shown))
            except ModelError as refusal:
                self._kernel = refusal
        if isinstance(self._kernel, Exception):
            raise self._kernel
        return self._kernel

    def kernel_ready(self) -> bool:
        """Whether the kernel runs without compiling: loaded in this process, or compiled into the cache before."""
        if self._kernel is not None:
            return not isinstance(self._kernel, Exception)
        from .numba_codegen import kernel_compiled

        return self.cache is not None and kernel_compiled(self.cache)


def variable_kinds(compiled: CompiledModel, series: frozenset[str] = frozenset()) -> dict[str, str]:
    """'constant', 'dynamic' or 'series' per variable, when ``series`` are given as points over time."""
    # asked once per batch (and per single run), with the same few ``series``: kept on the compiled model
    known = compiled.__dict__.setdefault("_variable_kinds", {})
    if series not in known:
        known[series] = _variable_kinds(compiled, series)
    return dict(known[series])


def _variable_kinds(compiled: CompiledModel, series: frozenset[str]) -> dict[str, str]:
    kind = {i: n.kind for i, n in compiled.nodes.items()}
    for ident in series:
        kind[ident] = "series"
    changed = True
    while changed:
        changed = False
        for i, n in compiled.nodes.items():
            if kind[i] == "constant" and any(kind[d] in ("dynamic", "series") for d in n.deps):
                kind[i] = "dynamic"
                changed = True
    return kind


@dataclass
class Schedule:
    """What the engine computes, and in which order: shared by the numpy module and the compiled kernel."""

    kind: dict[str, str]
    constants: list[str]
    dynamic_names: list[str]
    step_order: list[str]
    init_order: list[str]


def schedule(compiled: CompiledModel, series: frozenset[str] = frozenset(), forced: frozenset[str] = frozenset(),
             keep: frozenset[str] | None = None) -> Schedule:
    """Constants, initial values and one time step in dependency order, for runs where ``series`` vary over time."""
    nodes = compiled.nodes
    names = list(nodes)
    kind = variable_kinds(compiled, series)
    computed = [i for i in names if kind[i] in ("constant", "dynamic", "series")]
    deps = {i: set(nodes[i].deps) for i in names}
    constants = _toposort([i for i in computed if kind[i] == "constant"], deps, "constants", compiled)
    dynamic_names = [i for i in computed if kind[i] in ("dynamic", "series")]
    step_order = _toposort(dynamic_names, deps, "equations", compiled)
    if keep is not None:
        needed = _needed_each_step(compiled, keep | forced, deps)
        step_order = [i for i in step_order if i in needed]

    # initial values: states and the variables their initial values need, in dependency order
    states = compiled.states
    init_deps = {i: set(nodes[i].deps) | set(nodes[i].reads_states) for i in dynamic_names}
    for s, state in states.items():
        init_deps[s] = {d for d in state.init_deps if kind.get(d) in ("dynamic", "series")}
    needed, frontier = set(), list(states)
    while frontier:
        item = frontier.pop()
        if item in needed:
            continue
        needed.add(item)
        frontier.extend(d for d in init_deps[item] if d in init_deps)
    ordering = [i for i in dynamic_names if i in needed]
    state_names = list(states)
    position = {n: k for k, n in enumerate(ordering + state_names)}
    init_order = _toposort(
        sorted(needed, key=lambda n: (nodes[n].order if n in nodes else nodes[states[n].owner].order, position[n])),
        {k: init_deps[k] for k in needed},
        "initial values",
        compiled,
    )
    return Schedule(kind, constants, dynamic_names, step_order, init_order)


def generate(compiled: CompiledModel, series: frozenset[str] = frozenset(), forced: frozenset[str] = frozenset(),
             keep: frozenset[str] | None = None, extra: tuple[list[str], list[str]] | None = None) -> str:
    """Python source of ``simulate`` for ``compiled`` (saving only ``keep`` when given).

    ``extra`` is (lines before the time loop, lines in each time step once every
    variable has its value), as the link-score variant (``linkscores``) adds them.
    """
    nodes = compiled.nodes
    names = list(nodes)
    plan = schedule(compiled, series, forced, keep)
    kind, constants, dynamic_names = plan.kind, plan.constants, plan.dynamic_names
    step_order, init_order, states = plan.step_order, plan.init_order, compiled.states

    over_time = _lookups_of_time(compiled, step_order, kind, forced)

    def node_code(ident: str, in_loop: bool = False) -> list[str]:
        if in_loop and ident in over_time:
            return [f"v_{ident} = T_{ident}[n]"]
        if kind[ident] == "series":
            return [f"v_{ident} = _series_at(time, *P['{ident}'])"]
        if ident in forced:  # held at given values (Vensim's test inputs): elements not given keep their equation
            return nodes[ident].code + [f"v_{ident} = _held(F['{ident}'], time, v_{ident})"]
        return nodes[ident].code

    body: list[str] = []
    for ident in CONTROL:
        if ident in nodes:
            body.append(f"v_{ident} = consts['{ident}']")
    body.append("time = consts['initial_time']")
    body.append("# constants")
    for ident in constants:
        if nodes[ident].internal:
            body.extend(nodes[ident].code)
            continue
        body.append(f"if '{ident}' in P:")
        body.append(f"    v_{ident} = P['{ident}']")
        body.append("else:")
        body.extend("    " + line for line in nodes[ident].code)
    body.append("# initial values")
    for item in init_order:
        if item in states:
            state = states[item]
            body.extend(state.init)
            if state.is_stock:
                body.append(f"if '{state.owner}' in I:")
                body.append(f"    _given, _mask = I['{state.owner}']")
                body.append(f"    {item} = np.where(_mask[{state.location or '...'}], _given[:, {state.location or '...'}], {item})")
        else:
            body.extend(node_code(item))
    body.append("# outputs")
    saved = [i for i in names if kind[i] in ("constant", "dynamic", "series") and not nodes[i].internal
             and (keep is None or i in keep)]
    for ident in saved:
        body.append(f"o_{ident} = out.get('{ident}')")
    for ident in (c for c in constants if not nodes[c].internal and (keep is None or c in keep)):
        body.append(f"if o_{ident} is not None:")
        body.append(f"    o_{ident}[:] = v_{ident}")
    body.append("# lookups of time alone, for every step at once")
    for ident, (grid, table) in over_time.items():
        body.append(f"T_{ident} = _lookup_grid_steps(times, {grid}, {table})")
    if extra is not None:
        body.extend(extra[0])
    body.append("k = 0")
    body.append("last = len(times) - 1")
    body.append("for n, time in enumerate(times):")
    loop: list[str] = []
    for ident in step_order:
        loop.extend(node_code(ident, in_loop=True))
    if extra is not None:
        loop.extend(extra[1])
    loop.append("if save[n]:")
    for ident in (d for d in dynamic_names if not nodes[d].internal and (keep is None or d in keep)):
        loop.append(f"    if o_{ident} is not None:")
        loop.append(f"        o_{ident}[:, k] = v_{ident}")
    loop.append("    k += 1")
    loop.append("if n == last:")
    loop.append("    break")
    for state in states.values():
        loop.extend(state.update)
    for name, state in states.items():
        if state.update:
            loop.append(f"{name} = n_{name}")
    body.extend("    " + line for line in loop)
    # whether each run's stocks ended finite: a stock that once turns NaN or infinite stays so (x + NaN is NaN,
    # np.maximum keeps NaN), so one check after the loop finds every run that broke, for no cost per step
    stocks = [name for name, state in states.items() if state.is_stock]
    body.append("if '__finite__' in out:")
    body.append(f"    out['__finite__'][:] = _finite_rows(rows, {', '.join(stocks)})")
    body.append("return k")
    header = (
        f"# Generated by migsd's batched engine {ENGINE_VERSION} from {Path(compiled.source).name}; do not edit.\n"
        "def simulate(P, I, F, times, save, out, consts, rows):\n"
    )
    return header + textwrap.indent("\n".join(body), "    ") + "\n"


_LOOKUP_OF_TIME = re.compile(r"^v_(?P<ident>\w+) = _lookup_grid\(time, (?P<grid>LG_\w+), (?P<table>LY_\w+(\[[:, ]*\])?)\)$")


def _lookups_of_time(compiled: CompiledModel, step_order: list[str], kind: dict, forced) -> dict[str, tuple]:
    """Variables that are a lookup table of time and nothing else: identifier -> (grid, table) code."""
    found = {}
    for ident in step_order:
        node = compiled.nodes[ident]
        match = _LOOKUP_OF_TIME.match(node.code[0]) if len(node.code) == 1 else None
        if (match and match["ident"] == ident and kind[ident] == "dynamic" and ident not in forced
                and not node.reads_states and all(kind.get(d) in ("constant", "control", "lookup") for d in node.deps)):
            found[ident] = (match["grid"], match["table"])
    return found


def _needed_each_step(compiled: CompiledModel, keep: frozenset[str], deps: dict[str, set[str]]) -> set[str]:
    """The variables a time step must compute: those kept, those the states' next values read, and their inputs."""
    frontier = set(keep)
    for state in compiled.states.values():
        frontier.update(re.findall(r"\bv_(\w+)", "\n".join(state.update)))
    needed: set[str] = set()
    while frontier:
        ident = frontier.pop()
        if ident in needed or ident not in compiled.nodes:
            continue
        needed.add(ident)
        frontier.update(deps[ident])
    return needed


def _digest(parts) -> str:
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:16]


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, path)


def _engine_source() -> str:
    """Digest of the engine's own code, so a changed compiler never reuses an old cache."""
    here = Path(__file__).parent
    return _digest([hashlib.sha256((here / f).read_bytes()).hexdigest() for f in ("compiler.py", "codegen.py", "runtime.py",
                                                                                          "numba_codegen.py")])


def load_engine(mdl_path: Path, cache_root: Path | None = None) -> Engine:
    """The engine for ``mdl_path``, compiled once per model content, pysd and engine version."""
    import pysd

    mdl_path = Path(mdl_path)
    key = _digest([hashlib.sha256(mdl_path.read_bytes()).hexdigest(), pysd.__version__, ENGINE_VERSION, _engine_source()])
    if cache_root is None:
        compiled = compile_mdl(mdl_path)
        return Engine(compiled)
    folder = Path(cache_root) / "engines" / key
    stored = folder / "compiled.pickle"
    compiled = None
    if stored.exists():
        try:
            compiled = pickle.loads(stored.read_bytes())
        except Exception:  # a cache written by another version is rebuilt, never trusted
            compiled = None
    if compiled is None:
        compiled = compile_mdl(mdl_path)
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".partial")
        with os.fdopen(handle, "wb") as stream:
            stream.write(pickle.dumps(compiled))
        os.replace(temporary, stored)
    return Engine(compiled, folder)

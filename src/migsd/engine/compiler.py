"""pysd's abstract model of a .mdl -> numpy expressions with every subscript resolved.

Each value is a numpy array whose first axis is the run (length 1 when the value is
the same for every run) followed by one axis per subscript range, in an order fixed
here at compile time; Python numbers stand for literals and for ``Time``. Operands
are transposed and given new axes at compile time so numpy broadcasting does the
rest: no per-element Python loop is left at run time.

The reference semantics are pysd's (it is the reader and the reference): subscript
selection and renaming follow its ``ReferenceBuilder`` and ``visit_loc``, stateful
functions its ``statefuls`` module, integration its Euler loop. A construct outside
the supported set raises :class:`UnsupportedConstruct` naming the variable and the
construct, so callers can fall back to pysd instead of giving different numbers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError

ENGINE_VERSION = "1"

SMALL_VENSIM = 1e-6

# Vensim functions mapped onto numpy, by the name pysd's parser gives them.
_ELEMENTWISE = {
    "abs": "np.abs",
    "exp": "np.exp",
    "sin": "np.sin",
    "cos": "np.cos",
    "tan": "np.tan",
    "arcsin": "np.arcsin",
    "arccos": "np.arccos",
    "arctan": "np.arctan",
    "sinh": "np.sinh",
    "cosh": "np.cosh",
    "tanh": "np.tanh",
    "sqrt": "np.sqrt",
    "ln": "np.log",
    "integer": "np.trunc",
}
_BINARY = {"min": "np.minimum", "max": "np.maximum", "power": "np.power"}
_REDUCTIONS = {"sum": "np.sum", "prod": "np.prod", "vmin": "np.min", "vmax": "np.max"}
_OPERATORS = {
    "^": "%(left)s**%(right)s",
    "*": "%(left)s*%(right)s",
    "/": "%(left)s/%(right)s",
    "+": "%(left)s + %(right)s",
    "-": "%(left)s - %(right)s",
    "=": "%(left)s == %(right)s",
    "<>": "%(left)s != %(right)s",
    ">=": "%(left)s >= %(right)s",
    ">": "%(left)s > %(right)s",
    "<=": "%(left)s <= %(right)s",
    "<": "%(left)s < %(right)s",
    ":AND:": "np.logical_and(%(left)s, %(right)s)",
    ":OR:": "np.logical_or(%(left)s, %(right)s)",
}
CONTROL = ("initial_time", "final_time", "time_step", "saveper")


class UnsupportedConstruct(ModelError):
    """The engine cannot compile a construct of the .mdl (pysd can still run it)."""

    def __init__(self, variable: str, construct: str):
        self.variable = variable
        self.construct = construct
        super().__init__(f"'{variable}' uses {construct}, which the batched engine does not support")


@dataclass
class Expr:
    """Python source of a value and the names of its subscript axes (after the run axis)."""

    code: str
    dims: tuple[str, ...] = ()
    literal: bool = False  # a Python number: no run axis, broadcasts with anything
    invariant: bool = False  # the same at every time step (literals and constants only)


@dataclass
class State:
    """Memory carried from one time step to the next (a stock, or the inside of a SMOOTH...)."""

    name: str
    owner: str
    shape: tuple[int, ...]
    init: list[str]  # statements that set the state at the initial time
    update: list[str]  # statements that compute the state's next value into n_<name>
    init_deps: set[str] = field(default_factory=set)
    is_stock: bool = False
    extra: list[str] = field(default_factory=list)  # more local names carried (pipes, pointers)
    location: str = ""  # where a stock's component sits in its variable (index source)


@dataclass
class Node:
    """One .mdl variable."""

    name: str
    ident: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    kind: str  # 'control', 'lookup', 'constant', 'dynamic'
    code: list[str] = field(default_factory=list)
    deps: set[str] = field(default_factory=set)
    reads_states: list[str] = field(default_factory=list)
    uses_time: bool = False
    is_stock: bool = False
    units: str = ""
    order: int = 0
    lookup_type: str = ""
    internal: bool = False  # a part of another variable's equation, computed once (not a .mdl variable)
    control_deps: set[str] = field(default_factory=set)  # the control variables its equation reads


@dataclass
class CompiledModel:
    """Everything code generation needs, independent of any run."""

    source: str
    subscripts: dict[str, list[str]]
    nodes: dict[str, Node]
    states: dict[str, State]
    tables: dict[str, np.ndarray]


class _Context:
    """Where a component is being compiled: its element, definition subscripts and dependency sink."""

    def __init__(self, node: Node, tokens: list[str], def_subs: dict, sink: set):
        self.node = node
        self.tokens = tokens
        self.def_subs = def_subs
        self.sink = sink

    def with_sink(self, sink: set) -> "_Context":
        return _Context(self.node, self.tokens, self.def_subs, sink)


#: Model files pysd reads: Vensim's, and XMILE (Stella, and others that write the standard).
VENSIM_SUFFIXES = (".mdl",)
XMILE_SUFFIXES = (".xmile", ".xml", ".stmx")


def model_format(path: Path) -> str:
    """'vensim' or 'xmile', from the file's suffix; a :class:`ModelError` for any other file."""
    suffix = Path(path).suffix.lower()
    if suffix in VENSIM_SUFFIXES:
        return "vensim"
    if suffix in XMILE_SUFFIXES:
        return "xmile"
    raise ModelError(
        f"{Path(path).name}: not a model file pysd reads; give a Vensim {', '.join(VENSIM_SUFFIXES)} "
        f"or an XMILE {', '.join(XMILE_SUFFIXES)} file")


def parse_abstract(mdl_path: Path):
    """pysd's abstract model of a .mdl or XMILE file (its parser's notices silenced; they concern its own
    code generation)."""
    if model_format(mdl_path) == "xmile":
        from pysd.translators.xmile.xmile_file import XmileFile as Reader
    else:
        from pysd.translators.vensim.vensim_file import VensimFile as Reader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model_file = Reader(str(mdl_path))
        model_file.parse()
        return model_file.get_abstract_model()


def compile_mdl(mdl_path: Path) -> CompiledModel:
    """Parse ``mdl_path`` with pysd and compile it; raises :class:`UnsupportedConstruct`."""
    abstract = parse_abstract(mdl_path)
    # the first pass finds which variables are constant; the second moves the parts of
    # time-varying equations that only involve constants out of the time loop
    first = _Compiler(abstract, Path(mdl_path))
    compiled = first.compile()
    constants = {i for i, n in compiled.nodes.items() if n.kind == "constant"}
    return _Compiler(abstract, Path(mdl_path), constants, first.repeats).compile()


class _Compiler:
    def __init__(self, abstract, path: Path, constants: set[str] | None = None, repeats: dict | None = None):
        from pysd.builders.python.namespace import NamespaceManager
        from pysd.builders.python.subscripts import SubscriptManager

        self.path = path
        if len(abstract.sections) != 1:
            names = [s.name for s in abstract.sections if s.name != "__main__"]
            raise UnsupportedConstruct(names[0] if names else "(model)", "macros")
        self.section = abstract.sections[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.sm = SubscriptManager(self.section.subscripts, path.parent)
        self.namespace = NamespaceManager()
        self.nodes: dict[str, Node] = {}
        self.by_clean: dict[str, Node] = {}
        self.elements = {}
        self.states: dict[str, State] = {}
        self.tables: dict[str, np.ndarray] = {}
        self._memo: dict[int, Expr] = {}
        self._count = 0
        self._time_uses = 0
        self.constant_idents = constants
        self.hoisting = constants is not None
        # how often each sub-expression occurs (first pass); the second computes repeated ones once per step
        self.repeats: dict = {}
        self._previous_repeats = repeats or {}
        self._shared: dict = {}

    # ------------------------------------------------------------------ setup
    def compile(self) -> CompiledModel:
        for order, element in enumerate(self.section.elements):
            self.namespace.add_to_namespace(element.name)
            ident = self.namespace.namespace[element.name]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dims = tuple(self.sm.make_merge_list([c.subscripts[0] for c in element.components]))
            shape = tuple(len(self.coords(d)) for d in dims)
            kind = "control" if ident in CONTROL else "dynamic"
            if any(type(c).__name__ == "AbstractLookup" for c in element.components):
                kind = "lookup"
            node = Node(element.name, ident, dims, shape, kind, units=element.units or "", order=order)
            self.nodes[ident] = node
            self.elements[ident] = element
        self.by_clean = dict(self.namespace.cleanspace)
        for ident, node in self.nodes.items():
            if node.kind == "lookup":
                self._compile_lookup(node, self.elements[ident])
        for ident, node in list(self.nodes.items()):
            if node.kind != "lookup":
                self._compile_element(node, self.elements[ident])
        self._classify()
        return CompiledModel(
            source=str(self.path),
            subscripts={k: list(v) for k, v in self.sm.subscripts.items()},
            nodes=self.nodes,
            states=self.states,
            tables=self.tables,
        )

    def coords(self, dim: str) -> list[str]:
        return list(self.sm.subscripts[dim.rstrip("!")])

    def _new_name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def _constant_array(self, values: np.ndarray) -> str:
        name = self._new_name("K")
        self.tables[name] = np.asarray(values, dtype=float)
        return name

    # -------------------------------------------------------------- elements
    def _component_context(self, node: Node, component, sink: set) -> _Context:
        tokens = list(component.subscripts[0])
        def_subs = self.sm.make_coord_dict(tokens) if tokens else {}
        return _Context(node, tokens, def_subs, sink)

    def _context_dims(self, ctx: _Context) -> tuple[str, ...]:
        """Axes of a component's value: its definition subscripts that are ranges, not single elements."""
        dims = []
        for token, (dim, coords) in zip(ctx.tokens, ctx.def_subs.items()):
            if token in self.sm.subscripts:
                dims.append(dim)
        return tuple(dims)

    def _compile_element(self, node: Node, element) -> None:
        try:
            self._compile_components(node, element)
        except _Misaligned as error:
            raise UnsupportedConstruct(
                node.name, f"an expression over {list(error.have)} where the equation is over {list(error.want)}"
            ) from None

    def _compile_components(self, node: Node, element) -> None:
        blocks = []
        for component in element.components:
            kind = type(component).__name__
            if kind == "AbstractData" or type(component.ast).__name__ == "DataStructure":
                raise UnsupportedConstruct(node.name, "data variables (:= or GET DATA)")
            ctx = self._component_context(node, component, node.deps)
            value = self.expr(component.ast, ctx)
            blocks.append((component, ctx, value))
        if node.kind == "control":
            if len(blocks) != 1 or blocks[0][2].dims:
                raise UnsupportedConstruct(node.name, "a subscripted control variable")
            if node.uses_time or node.reads_states:
                raise UnsupportedConstruct(node.name, "a control variable computed from other variables or Time")
            # constants and other control variables are allowed (SAVEPER = TIME STEP); what
            # the constants depend on is checked once every variable is classified
            node.code = [f"v_{node.ident} = {blocks[0][2].code}"]
            return
        node.code = self._assemble(node, blocks)

    def _assemble(self, node: Node, blocks) -> list[str]:
        target = f"v_{node.ident}"
        if len(blocks) == 1:
            component, ctx, value = blocks[0]
            if not component.subscripts[1] and tuple(ctx.tokens) == node.dims:
                return [f"{target} = {self._fill(value, node.dims, node.shape)}"]
        # each component's value once, into a temporary, before the array that holds them all
        lines, parts = [], []
        covered = np.zeros(node.shape, dtype=bool)
        for component, ctx, value in blocks:
            aligned = self.align(value, self._context_dims(ctx))
            if not value.literal:
                temp = self._new_name("c")
                lines.append(f"{temp} = {aligned}")
                aligned = temp
            parts.append((component, ctx, value, aligned))
            mask = np.zeros(node.shape, dtype=bool)
            mask[self._mask_index(node, ctx.tokens)] = True
            for tokens in component.subscripts[1]:
                mask[self._mask_index(node, tokens)] = False
            covered |= mask
        rows = ", ".join(aligned for _, _, value, aligned in parts if not value.literal) or "None"
        # cells no equation defines stay NaN, so a gap in the .mdl shows in the results
        fill = "np.empty" if covered.all() else "np.full"
        nan = "" if covered.all() else ", np.nan"
        lines.append(f"{target} = {fill}((_rows({rows}),) + {node.shape!r}{nan})")
        for component, ctx, value, aligned in parts:
            index, lists = self._locate(node, ctx.tokens)
            excepts = component.subscripts[1]
            if excepts:
                mask = np.zeros(node.shape, dtype=bool)
                mask[self._mask_index(node, ctx.tokens)] = True
                for tokens in excepts:
                    mask[self._mask_index(node, tokens)] = False
                mask_name = self._constant_array(mask)
                temp = self._new_name("tmp")
                lines.append(f"{temp} = np.empty_like({target})")
                lines.append(self._put(temp, index, lists, ctx, aligned, value.literal))
                lines.append(f"np.copyto({target}, {temp}, where={mask_name}.astype(bool)[None])")
            else:
                lines.append(self._put(target, index, lists, ctx, aligned, value.literal))
        return lines

    def _locate(self, node: Node, tokens: list[str]):
        """Index of a component's block in its element: ints, slices or index lists per axis."""
        index, lists = [], False
        for token, dim in zip(tokens, node.dims):
            full = self.coords(dim)
            if token in self.sm.subscripts:
                positions = [full.index(e) for e in self.coords(token)]
                if positions == list(range(positions[0], positions[0] + len(positions))):
                    index.append(f"{positions[0]}:{positions[-1] + 1}")
                else:
                    index.append(positions)
                    lists = True
            else:
                index.append(full.index(token))
        return index, lists

    def _mask_index(self, node: Node, tokens: list[str]):
        out = []
        for token, dim in zip(tokens, node.dims):
            full = self.coords(dim)
            if token in self.sm.subscripts:
                out.append(np.array([full.index(e) for e in self.coords(token)]))
            else:
                out.append(np.array([full.index(token)]))
        return np.ix_(*out) if out else ()

    def _put(self, target: str, index, lists: bool, ctx: _Context, aligned: str, literal: bool) -> str:
        if not index:
            return f"{target}[:] = {aligned}"
        if not lists:
            return f"{target}[:, {', '.join(str(i) for i in index)}] = {aligned}"
        arrays = []
        expand = []
        for token, item in zip(ctx.tokens, index):
            if isinstance(item, list):
                arrays.append(f"np.array({item})")
                expand.append(":")
            elif isinstance(item, int):
                arrays.append(f"np.array([{item}])")
                expand.append("None")
            else:
                start, stop = (int(x) for x in item.split(":"))
                arrays.append(f"np.arange({start}, {stop})")
                expand.append(":")
        value = aligned if literal else f"np.asarray({aligned})[:, {', '.join(expand)}]"
        return f"{target}[(slice(None),) + np.ix_({', '.join(arrays)})] = {value}"

    def _fill(self, value: Expr, dims: tuple[str, ...], shape: tuple[int, ...]) -> str:
        """A value as a full array of the element's shape (run axis may stay 1)."""
        aligned = self.align(value, dims)
        if not value.literal and tuple(value.dims) == tuple(dims):
            return aligned
        return f"_full({aligned}, {shape!r})"

    # --------------------------------------------------------------- lookups
    def _compile_lookup(self, node: Node, element) -> None:
        tables = []
        for component in element.components:
            lookup = component.ast
            if type(lookup).__name__ != "LookupsStructure":
                raise UnsupportedConstruct(node.name, f"lookups from {type(lookup).__name__}")
            tables.append((component, lookup))
        kinds = {lookup.type for _, lookup in tables}
        if len(kinds) != 1 or kinds - {"interpolate", "hold_backward", "extrapolate"}:
            raise UnsupportedConstruct(node.name, f"lookups of type {sorted(kinds)}")
        length = max(len(lookup.x) for _, lookup in tables)
        xs = np.full(node.shape + (length,), np.nan)
        ys = np.full(node.shape + (length,), np.nan)
        for component, lookup in tables:
            x = np.asarray(lookup.x, dtype=float)
            y = np.asarray(lookup.y, dtype=float)
            pad = length - len(x)
            x = np.concatenate([x, np.full(pad, x[-1])])
            y = np.concatenate([y, np.full(pad, y[-1])])
            tokens = list(component.subscripts[0])
            index = self._mask_index(node, tokens) if tokens else ()
            xs[index] = x
            ys[index] = y
        node.kind = "lookup"
        node.lookup_type = kinds.pop()
        flat = xs.reshape(-1, length)
        if node.shape and np.all(flat == flat[:1]) and np.all(np.diff(flat[0]) > 0):
            self.tables[f"LG_{node.ident}"] = flat[0].copy()  # one grid shared by every element
        if node.shape:  # a leading run axis of 1, as every value has
            xs, ys = xs[None], ys[None]
        self.tables[f"LX_{node.ident}"] = xs
        self.tables[f"LY_{node.ident}"] = ys

    # ------------------------------------------------------------ expressions
    def expr(self, ast, ctx: _Context) -> Expr:
        kind = type(ast).__name__
        if kind not in _COMPOUND:
            return self._leaf(ast, ctx)
        key = (repr(ast), tuple(ctx.def_subs), self._context_dims(ctx))
        self.repeats[key] = self.repeats.get(key, 0) + 1
        if key in self._shared:
            ident, dims = self._shared[key]
            ctx.sink.add(ident)
            return Expr(f"v_{ident}", dims, invariant=False)
        sink: set = set()
        uses, states = self._time_uses, len(self.states)
        value = self._leaf(ast, ctx.with_sink(sink))
        value.invariant = (
            self.constant_idents is not None
            and self._time_uses == uses
            and len(self.states) == states
            and all(self._fixed(d) for d in sink)
        )
        if value.invariant and not value.literal and self._in_time_loop(ctx):
            return self._hoist(value, sink, ctx)
        if (
            self._previous_repeats.get(key, 0) > 1
            and not value.invariant
            and not value.literal
            and len(self.states) == states
            and self._in_time_loop(ctx)
        ):
            return self._share(key, value, sink, ctx, uses_time=self._time_uses != uses)
        ctx.sink.update(sink)
        return value

    def _share(self, key, value: Expr, deps: set[str], ctx: _Context, uses_time: bool) -> Expr:
        """A sub-expression that several equations repeat, computed once per time step."""
        ident = self._new_name("x")
        shape = tuple(len(self.coords(d)) for d in value.dims)
        node = Node(f"{ctx.node.name} (shared part)", ident, value.dims, shape, "dynamic",
                    code=[f"v_{ident} = {value.code}"], deps=set(deps), order=ctx.node.order, internal=True,
                    uses_time=uses_time)
        self.nodes[ident] = node
        self._shared[key] = (ident, value.dims)
        ctx.sink.add(ident)
        return Expr(f"v_{ident}", value.dims)

    def _fixed(self, ident: str) -> bool:
        """A constant of the first pass, or a part already moved out of the time loop."""
        return ident in self.constant_idents or (ident in self.nodes and self.nodes[ident].internal)

    def _in_time_loop(self, ctx: _Context) -> bool:
        return self.hoisting and ctx.node.ident not in self.constant_idents and ctx.node.kind != "control"

    def _hoist(self, value: Expr, deps: set[str], ctx: _Context) -> Expr:
        """Compute an invariant part of a time-varying equation once, before the time loop."""
        ident = self._new_name("h")
        shape = tuple(len(self.coords(d)) for d in value.dims)
        node = Node(f"{ctx.node.name} (invariant part)", ident, value.dims, shape, "constant",
                    code=[f"v_{ident} = {value.code}"], deps=set(deps), order=ctx.node.order, internal=True)
        self.nodes[ident] = node
        ctx.sink.add(ident)
        return Expr(f"v_{ident}", value.dims, invariant=True)

    def _leaf(self, ast, ctx: _Context) -> Expr:
        if isinstance(ast, bool):
            return Expr(repr(float(ast)), literal=True)
        if isinstance(ast, (int, float, np.integer, np.floating)):
            value = float(ast)
            return Expr("np.nan" if np.isnan(value) else repr(value), literal=True, invariant=True)
        if isinstance(ast, np.ndarray):
            return self._array_literal(ast, ctx)
        kind = type(ast).__name__
        method = getattr(self, f"_x_{kind}", None)
        if method is None:
            raise UnsupportedConstruct(ctx.node.name, _describe(kind))
        return method(ast, ctx)

    def _array_literal(self, values: np.ndarray, ctx: _Context) -> Expr:
        shape = [len(c) for c in ctx.def_subs.values()]
        array = np.asarray(values, dtype=float).reshape(shape)
        keep = tuple(slice(None) if token in self.sm.subscripts else 0 for token in ctx.tokens)
        array = array[keep] if keep else array
        name = self._constant_array(array[None])
        return Expr(name, self._context_dims(ctx), invariant=True)

    def _x_ArithmeticStructure(self, ast, ctx: _Context) -> Expr:
        return self._operation(ast, ctx)

    def _x_LogicStructure(self, ast, ctx: _Context) -> Expr:
        return self._operation(ast, ctx)

    def _operation(self, ast, ctx: _Context) -> Expr:
        arguments = [self.expr(a, ctx) for a in ast.arguments]
        operators = list(ast.operators)
        arguments, operators = self._group_invariants(arguments, operators, ctx)
        if len(arguments) > 2 and len(set(operators)) == 1 and operators[0] in "*+":
            # combine the operands with fewest axes first: one operation at full size instead of several
            arguments = sorted(arguments, key=lambda a: 0 if a.literal else len(a.dims))
        dims = _merge_dims(arguments, self._context_dims(ctx))
        codes = [self._operand(a, dims) for a in arguments]
        literal = all(a.literal for a in arguments)
        if len(arguments) == 1:
            operator = operators[0]
            if operator == "negative":
                return Expr(f"(-{codes[0]})", dims, literal)
            if operator == ":NOT:":
                return Expr(f"np.logical_not({codes[0]})", dims, literal)
            if operator == "positive":
                return Expr(codes[0], dims, literal)
            raise UnsupportedConstruct(ctx.node.name, f"the unary operator {operator}")
        for operator in operators:
            if operator not in _OPERATORS:
                raise UnsupportedConstruct(ctx.node.name, f"the operator {operator}")
        # built right to left as pysd does, so Python's precedence decides as it does in pysd
        right = codes.pop()
        while operators:
            template = _OPERATORS[operators.pop()]
            right = template % {"left": codes.pop(), "right": right}
        return Expr(f"({right})", dims, literal)

    def _group_invariants(self, arguments: list[Expr], operators: list[str], ctx: _Context):
        """In a chain of only * or only +, combine the invariant operands once, outside the time loop."""
        if not self._in_time_loop(ctx) or len(arguments) < 3 or len(set(operators)) != 1 or operators[0] not in "*+":
            return arguments, operators
        fixed = [a for a in arguments if a.invariant]
        if len(fixed) < 2 or len(fixed) == len(arguments) or all(a.literal for a in fixed):
            return arguments, operators
        operator = operators[0]
        dims = _merge_dims(fixed, self._context_dims(ctx))
        combined = Expr(f"({f' {operator} '.join(self._operand(a, dims) for a in fixed)})", dims, invariant=True)
        combined = self._hoist(combined, {d for d in ctx.sink if self._fixed(d)}, ctx)
        varying = [a for a in arguments if not a.invariant] + [combined]
        return varying, [operator] * (len(varying) - 1)

    def _operand(self, value: Expr, dims) -> str:
        # numbers go in bare, as pysd writes them: '-30 ** x' is -(30 ** x) in Python and in pysd
        if value.literal and _is_number(value.code):
            return value.code
        return f"({self.align(value, dims)})"

    def align(self, value: Expr, target: tuple[str, ...]) -> str:
        """Source that gives ``value`` the axes ``target`` (transposed, new axes of length 1)."""
        if value.literal:
            return value.code
        missing = [d for d in value.dims if d not in target]
        if missing:
            raise _Misaligned(value.dims, target)
        order = [d for d in target if d in value.dims]
        code = value.code
        if order != list(value.dims):
            perm = (0,) + tuple(1 + value.dims.index(d) for d in order)
            code = f"{code}.transpose({perm})"
        if len(order) < len(target):
            code = f"{code}[:, {', '.join(':' if d in value.dims else 'None' for d in target)}]"
        return code

    def _x_ReferenceStructure(self, ast, ctx: _Context) -> Expr:
        name = ast.reference
        if name == "time":
            ctx.node.uses_time = True
            self._time_uses += 1
            return Expr("time", (), literal=True)
        if name not in self.by_clean:
            return self._subscript_value(name, ctx)
        ident = self.by_clean[name]
        node = self.nodes[ident]
        if node.kind == "control":
            ctx.node.control_deps.add(ident)
            return Expr(f"v_{ident}", (), literal=True, invariant=True)
        if node.kind == "lookup":
            raise UnsupportedConstruct(ctx.node.name, f"the lookup '{node.name}' used as a value")
        ctx.sink.add(ident)
        invariant = self.constant_idents is not None and ident in self.constant_idents
        if ast.subscripts is None:
            return Expr(f"v_{ident}", node.dims, invariant=invariant)
        value = self._select(f"v_{ident}", node, list(ast.subscripts.subscripts), ctx, run_axis=True)
        value.invariant = invariant
        return value

    def _select(self, code: str, node: Node, tokens: list[str], ctx: _Context, run_axis: bool) -> Expr:
        """Subscripted reference: pick elements, subranges, and rename ranges as pysd does."""
        if len(tokens) != len(node.dims):
            raise UnsupportedConstruct(
                ctx.node.name, f"a reference to '{node.name}' with {len(tokens)} subscripts (it has {len(node.dims)})"
            )
        basic, takes, dims = [], [], []
        for token, orig_dim in zip(tokens, node.dims):
            full = self.coords(orig_dim)
            base = token[:-1] if token.endswith("!") else token
            if base not in self.sm.subscripts:
                if token not in full:
                    raise UnsupportedConstruct(ctx.node.name, f"'{token}' in a reference to '{node.name}'")
                basic.append(str(full.index(token)))
                continue
            coords = self.coords(base)
            if len(coords) == len(full):
                basic.append(":")
            elif len(coords) < len(full) and all(c in full for c in coords):
                positions = [full.index(c) for c in coords]
                if positions == list(range(positions[0], positions[0] + len(positions))):
                    basic.append(f"{positions[0]}:{positions[-1] + 1}")
                else:
                    basic.append(":")
                    takes.append((len(dims), positions))
            else:
                raise UnsupportedConstruct(ctx.node.name, f"subscript '{token}' in a reference to '{node.name}'")
            dims.append(token)
        lead = ":, " if run_axis else ""
        if any(b != ":" for b in basic):
            code = f"{code}[{lead}{', '.join(basic)}]"
        offset = 1 if run_axis else 0
        for axis, positions in takes:
            code = f"np.take({code}, {positions}, axis={axis + offset})"
        final = [self._mapped(d, dims, ctx) for d in dims]
        if len(set(final)) != len(final):
            raise UnsupportedConstruct(ctx.node.name, f"a reference to '{node.name}' repeating a subscript range")
        return Expr(code, tuple(final))

    def _mapped(self, dim: str, ref_dims: list[str], ctx: _Context) -> str:
        """pysd's rule: a range absent from the definition takes a mapped range that is present."""
        if dim in ctx.def_subs or dim.endswith("!"):
            return dim
        for mapped in self.sm.mapping.get(dim, []):
            if mapped in ctx.def_subs and mapped not in ref_dims:
                if len(self.coords(mapped)) != len(self.coords(dim)):
                    raise UnsupportedConstruct(ctx.node.name, f"mapping {dim} -> {mapped} of different lengths")
                return mapped
        return dim

    def _subscript_value(self, name: str, ctx: _Context) -> Expr:
        """A subscript range or element used as a number (its position, from 1)."""
        for range_name, elements in self.sm.subscripts.items():
            if range_name.replace(" ", "_").lower() == name:
                main = next((m for m, subs in self.sm.subranges.items() if range_name in subs or m == range_name), None)
                base = self.coords(main) if main else elements
                positions = np.array([base.index(e) + 1 for e in elements], dtype=float)
                return Expr(self._constant_array(positions[None]), (range_name,))
        for main in self.sm.subranges:
            for position, element in enumerate(self.coords(main), start=1):
                if element.replace(" ", "_").lower() == name:
                    return Expr(repr(float(position)), literal=True)
        raise UnsupportedConstruct(ctx.node.name, f"the unknown name '{name}'")

    def _x_CallStructure(self, ast, ctx: _Context) -> Expr:
        name = ast.function.reference
        if name in self.by_clean and self.nodes[self.by_clean[name]].kind == "lookup":
            return self._lookup_call(self.nodes[self.by_clean[name]], ast, ctx)
        args = [self.expr(a, ctx) for a in ast.arguments]
        if name in _ELEMENTWISE:
            (a,) = args
            return Expr(f"{_ELEMENTWISE[name]}({a.code})", a.dims, a.literal)
        if name in _BINARY:
            dims = _merge_dims(args, self._context_dims(ctx))
            return Expr(f"{_BINARY[name]}({self.align(args[0], dims)}, {self.align(args[1], dims)})", dims,
                        all(a.literal for a in args))
        if name == "log":
            dims = _merge_dims(args, self._context_dims(ctx))
            return Expr(f"(np.log({self.align(args[0], dims)}) / np.log({self.align(args[1], dims)}))", dims,
                        all(a.literal for a in args))
        if name == "pi":
            return Expr("np.pi", (), literal=True)
        if name in ("xidz", "zidz", "if_then_else", "modulo", "quantum"):
            dims = _merge_dims(args, self._context_dims(ctx))
            codes = [self.align(a, dims) for a in args]
            helper = {"xidz": "_xidz", "zidz": "_zidz", "if_then_else": "np.where",
                      "modulo": "_modulo", "quantum": "_quantum"}[name]
            return Expr(f"{helper}({', '.join(codes)})", dims, all(a.literal for a in args))
        if name in _REDUCTIONS:
            if len(args) != 1:
                raise UnsupportedConstruct(ctx.node.name, f"{name.upper()} with {len(args)} arguments")
            (a,) = args
            axes = tuple(1 + i for i, d in enumerate(a.dims) if d.endswith("!"))
            if not axes:
                raise UnsupportedConstruct(ctx.node.name, f"{name.upper()} without a range marked '!'")
            if a.literal:
                raise UnsupportedConstruct(ctx.node.name, f"{name.upper()} of a number")
            return Expr(self._reduce(name, a), tuple(d for d in a.dims if not d.endswith("!")))
        if name in ("vmin_xmile", "vmax_xmile"):  # XMILE's one-argument MIN/MAX: over every range of an array
            if len(args) != 1 or args[0].literal or not args[0].dims:
                raise UnsupportedConstruct(ctx.node.name, f"{name[:4].upper()} of XMILE with {len(args)} argument(s)"
                                           " other than one array")
            (a,) = args
            every = Expr(a.code, tuple(d if d.endswith("!") else d + "!" for d in a.dims), invariant=a.invariant)
            return Expr(self._reduce(name[:4], every), ())
        if name == "elmcount":
            (a,) = args
            if len(a.dims) != 1:
                raise UnsupportedConstruct(ctx.node.name, "ELMCOUNT of more than one range")
            return Expr(repr(float(len(self.coords(a.dims[0])))), literal=True)
        if name in ("step", "ramp", "Xramp", "pulse", "pulse_train"):
            ctx.node.uses_time = True
            self._time_uses += 1
            dims = _merge_dims(args, self._context_dims(ctx))
            codes = [self.align(a, dims) for a in args]
            if name == "ramp" and len(codes) == 2:
                codes.append("None")
            helper = {"step": "_step", "ramp": "_ramp", "Xramp": "_ramp", "pulse": "_pulse",
                      "pulse_train": "_pulse_train"}[name]
            literal = all(a.literal for a in args)
            return Expr(f"{helper}(time, v_time_step, {', '.join(codes)})", dims, literal)
        raise UnsupportedConstruct(ctx.node.name, f"the function {name.upper()}")

    def _reduce(self, name: str, value: Expr) -> str:
        """SUM/PROD/VMIN/VMAX over short ranges written out element by element.

        numpy's reductions cost far more than a few additions of slices when the
        reduced range has a handful of elements and the run axis is long; the
        order of the additions is numpy's own for such short ranges.
        """
        combine = {"sum": "({a} + {b})", "prod": "({a} * {b})", "vmin": "np.minimum({a}, {b})",
                   "vmax": "np.maximum({a}, {b})"}[name]
        code = value.code
        for position in sorted((i for i, d in enumerate(value.dims) if d.endswith("!")), reverse=True):
            axis = position + 1
            length = len(self.coords(value.dims[position]))
            if length > 8:
                code = f"{_REDUCTIONS[name]}({code}, axis={axis})"
                continue
            temp = self._new_name("r")
            parts = [f"{temp}[{', '.join([':'] * axis + [str(i)])}]" for i in range(length)]
            parts[0] = f"({temp} := {code})[{', '.join([':'] * axis + ['0'])}]"
            total = parts[0]
            for part in parts[1:]:
                total = combine.format(a=total, b=part)
            code = total
        return code

    def _lookup_call(self, table: Node, ast, ctx: _Context) -> Expr:
        if len(ast.arguments) != 1:
            raise UnsupportedConstruct(ctx.node.name, f"the lookup '{table.name}' called with {len(ast.arguments)} arguments")
        argument = self.expr(ast.arguments[0], ctx)
        xs, ys = f"LX_{table.ident}", f"LY_{table.ident}"
        kind = table.lookup_type
        if not table.dims:
            if kind == "interpolate":
                return Expr(f"np.interp({argument.code}, {xs}, {ys})", argument.dims, argument.literal)
            return Expr(f"_lookup({argument.code}, {xs}, {ys}, {kind!r})", argument.dims, argument.literal)
        if ast.function.subscripts is not None:
            tokens = list(ast.function.subscripts.subscripts)
            tx = self._select(xs, table, tokens, ctx, run_axis=True)
            ty = self._select(ys, table, tokens, ctx, run_axis=True)
        else:
            tx, ty = Expr(xs, table.dims), Expr(ys, table.dims)
        dims = _merge_dims([argument, tx], self._context_dims(ctx))
        if f"LG_{table.ident}" in self.tables and kind == "interpolate":
            return Expr(
                f"_lookup_grid({self.align(argument, dims)}, LG_{table.ident}, {self._align_table(ty, dims)})", dims
            )
        return Expr(
            f"_lookup({self.align(argument, dims)}, {self._align_table(tx, dims)}, "
            f"{self._align_table(ty, dims)}, {kind!r})",
            dims,
        )

    def _align_table(self, table: Expr, target) -> str:
        order = [d for d in target if d in table.dims]
        code = table.code
        if order != list(table.dims):
            perm = (0,) + tuple(1 + table.dims.index(d) for d in order) + (len(table.dims) + 1,)
            code = f"{code}.transpose({perm})"
        return f"{code}[:, {', '.join(':' if d in table.dims else 'None' for d in target)}, :]"

    def _x_InlineLookupsStructure(self, ast, ctx: _Context) -> Expr:
        argument = self.expr(ast.argument, ctx)
        lookup = ast.lookups
        if lookup.type not in ("interpolate", "hold_backward", "extrapolate"):
            raise UnsupportedConstruct(ctx.node.name, f"WITH LOOKUP of type {lookup.type}")
        xs = self._constant_array(np.asarray(lookup.x, dtype=float))
        ys = self._constant_array(np.asarray(lookup.y, dtype=float))
        if lookup.type == "interpolate":
            return Expr(f"np.interp({argument.code}, {xs}, {ys})", argument.dims, argument.literal)
        return Expr(f"_lookup({argument.code}, {xs}, {ys}, {lookup.type!r})", argument.dims, argument.literal)

    # -------------------------------------------------------------- statefuls
    def _state(self, ctx: _Context, shape_dims: tuple[str, ...], is_stock=False) -> State:
        name = self._new_name("s")
        shape = tuple(len(self.coords(d)) for d in shape_dims)
        state = State(name, ctx.node.ident, shape, [], [], is_stock=is_stock)
        self.states[name] = state
        ctx.node.reads_states.append(name)
        return state

    def _memoised(self, ast, ctx: _Context, build) -> Expr:
        key = id(ast)
        if key not in self._memo:
            self._memo[key] = build()
        value, deps = self._memo[key]
        ctx.sink.update(deps)
        return value

    def _sub(self, ast, ctx: _Context, sink: set) -> Expr:
        return self.expr(ast, ctx.with_sink(sink))

    def _x_IntegStructure(self, ast, ctx: _Context) -> Expr:
        def build():
            dims = self._context_dims(ctx)
            state = self._state(ctx, dims, is_stock=True)
            index, lists = self._locate(ctx.node, ctx.tokens)
            if lists:
                raise UnsupportedConstruct(ctx.node.name, "a stock defined over a subrange that is not contiguous")
            state.location = ", ".join(str(i) for i in index)
            flow = self._sub(ast.flow, ctx, set())
            initial = self._sub(ast.initial, ctx, state.init_deps)
            state.init.append(f"{state.name} = _full({self._aligned(initial, dims, ctx)}, {state.shape!r})")
            update = f"{state.name} + ({self._aligned(flow, dims, ctx)}) * v_time_step"
            if ast.non_negative:
                update = f"np.maximum({update}, 0)"
            state.update.append(f"n_{state.name} = {update}")
            return Expr(state.name, dims), set()

        return self._memoised(ast, ctx, build)

    def _part(self, ast, ctx: _Context, sink: set, dims) -> str:
        """An argument of a stateful function, its dependencies going to ``sink``, on the axes ``dims``."""
        return self._aligned(self._sub(ast, ctx, sink), dims, ctx)

    def _aligned(self, value: Expr, dims, ctx: _Context) -> str:
        try:
            return self.align(value, dims)
        except _Misaligned as error:
            raise UnsupportedConstruct(
                ctx.node.name, f"an expression over {list(error.have)} where the equation is over {list(error.want)}"
            ) from None

    def _x_InitialStructure(self, ast, ctx: _Context) -> Expr:
        def build():
            probe = self._sub(ast.initial, ctx, set())
            dims = probe.dims
            state = self._state(ctx, dims)
            initial = self._sub(ast.initial, ctx, state.init_deps)
            state.init.append(f"{state.name} = _full({self.align(initial, dims)}, {state.shape!r})")
            return Expr(state.name, dims), set()

        return self._memoised(ast, ctx, build)

    def _x_SmoothStructure(self, ast, ctx: _Context) -> Expr:
        order = ast.order
        if not isinstance(order, (int, float)) or order != int(order) or order < 1:
            raise UnsupportedConstruct(ctx.node.name, "SMOOTH N with an order that is not a whole number")
        return self._smooth(ast, ctx, int(order))

    def _x_SmoothNStructure(self, ast, ctx: _Context) -> Expr:
        if isinstance(ast.order, (int, float)) and ast.order == int(ast.order) and ast.order >= 1:
            return self._smooth(ast, ctx, int(ast.order))

        def build():
            dims = self._context_dims(ctx)
            state = self._state(ctx, dims)
            order = f"{state.name}_order"
            state.extra = [order]
            update_deps: set = set()
            target = self._part(ast.input, ctx, update_deps, dims)
            time = self._part(ast.smooth_time, ctx, update_deps, dims)
            initial = self._part(ast.initial, ctx, state.init_deps, dims)
            given = self._part(ast.order, ctx, state.init_deps, ())
            state.init += [
                f"{order} = _stage_count({ctx.node.name!r}, {given})",
                f"{state.name} = _stack({initial}, {order}, rows, {state.shape!r})",
            ]
            state.update.append(
                f"n_{state.name} = {state.name} + ((np.concatenate((_stack({target}, 1, rows, {state.shape!r}), "
                f"{state.name}[:-1])) - {state.name}) * {order} / ({time})) * v_time_step"
            )
            return Expr(f"{state.name}[-1]", dims), set()

        return self._memoised(ast, ctx, build)

    def _smooth(self, ast, ctx: _Context, order: int) -> Expr:
        def build():
            dims = self._context_dims(ctx)
            stages = [self._state(ctx, dims) for _ in range(order)]
            update_deps: set = set()
            target = self._part(ast.input, ctx, update_deps, dims)
            time = self._part(ast.smooth_time, ctx, update_deps, dims)
            for stage in stages:
                initial = self._sub(ast.initial, ctx, stage.init_deps)
                stage.init.append(f"{stage.name} = _full({self._aligned(initial, dims, ctx)}, {stage.shape!r})")
            previous = f"({target})"
            for stage in stages:
                stage.update.append(
                    f"n_{stage.name} = {stage.name} + (({previous} - {stage.name}) * {order} / ({time})) * v_time_step"
                )
                previous = stage.name
            return Expr(stages[-1].name, dims), set()

        return self._memoised(ast, ctx, build)

    def _x_DelayStructure(self, ast, ctx: _Context) -> Expr:
        return self._delay(ast, ctx, variable_times=False)

    def _x_DelayNStructure(self, ast, ctx: _Context) -> Expr:
        return self._delay(ast, ctx, variable_times=True)

    def _delay(self, ast, ctx: _Context, variable_times: bool) -> Expr:
        """DELAY1/DELAY3 (and DELAY N, whose stages remember the delay time they entered with), as pysd.

        The stages are one array with the stage first; their number is fixed at the
        initial time, lowered as pysd lowers it when the delay time is shorter than
        order x TIME STEP (with pysd's warning).
        """

        def build():
            dims = self._context_dims(ctx)
            state = self._state(ctx, dims)
            order, times = f"{state.name}_order", f"{state.name}_times"
            state.extra = [order] + ([times] if variable_times else [])
            update_deps: set = set()
            source = self._part(ast.input, ctx, update_deps, dims)
            time_update = self._part(ast.delay_time, ctx, update_deps, dims)
            value_deps: set = set()
            time_value = self._part(ast.delay_time, ctx, value_deps, dims)
            initial = self._part(ast.initial, ctx, state.init_deps, dims)
            time_init = self._part(ast.delay_time, ctx, state.init_deps, dims)
            given = self._part(ast.order, ctx, state.init_deps, ())
            state.init += [
                f"{order} = _delay_order({ctx.node.name!r}, {given}, v_time_step, {time_init})",
                f"{state.name} = _stack(({initial}) * ({time_init}), {order}, rows, {state.shape!r})",
            ]
            if variable_times:
                state.init.append(f"{times} = _stack({time_init}, {order}, rows, {state.shape!r})")
                state.update += [
                    f"{times} = np.concatenate((_stack({time_update}, 1, rows, {state.shape!r}), {times}[:-1]))",
                    f"_outflow = {state.name} / {times}",
                ]
                value = f"({state.name}[-1] / {times}[0])"
                value_deps = set()
            else:
                state.update.append(f"_outflow = {state.name} / ({time_update})")
                value = f"({state.name}[-1] / ({time_value}))"
            state.update.append(
                f"n_{state.name} = {state.name} + ((np.concatenate((_stack({source}, 1, rows, {state.shape!r}), "
                f"_outflow[:-1])) - _outflow) * {order}) * v_time_step"
            )
            return Expr(value, dims), value_deps

        return self._memoised(ast, ctx, build)

    def _x_DelayFixedStructure(self, ast, ctx: _Context) -> Expr:
        def build():
            dims = self._context_dims(ctx)
            state = self._state(ctx, dims)
            source = self._aligned(self._sub(ast.input, ctx, set()), dims, ctx)
            initial = self._sub(ast.initial, ctx, state.init_deps)
            time_init = self._sub(ast.delay_time, ctx, state.init_deps)
            pipe, pointer, length = f"{state.name}_pipe", f"{state.name}_at", f"{state.name}_len"
            state.extra = [pipe, pointer, length]
            state.init += [
                f"{state.name} = _full({self._aligned(initial, dims, ctx)}, {state.shape!r})",
                f"{length} = _fixed_delay_length({ctx.node.name!r}, {self.align(time_init, ())}, v_time_step)",
                f"{pipe} = [{state.name}] * {length}",
                f"{pointer} = 0",
            ]
            state.update += [
                f"{pipe}[{pointer}] = _full({source}, {state.shape!r})",
                f"{pointer} = ({pointer} + 1) % {length}",
                f"n_{state.name} = {pipe}[{pointer}]",
            ]
            return Expr(state.name, dims), set()

        if ast.delay_time is not None and not isinstance(ast.delay_time, (int, float)):
            probe = self._sub(ast.delay_time, ctx, set())
            if probe.dims:
                raise UnsupportedConstruct(ctx.node.name, "DELAY FIXED with a subscripted delay time")
        return self._memoised(ast, ctx, build)

    def _x_SampleIfTrueStructure(self, ast, ctx: _Context) -> Expr:
        def build():
            dims = self._context_dims(ctx)
            state = self._state(ctx, dims)
            value_deps: set = set()
            condition = self._part(ast.condition, ctx, value_deps, dims)
            source = self._part(ast.input, ctx, value_deps, dims)
            initial = self._sub(ast.initial, ctx, state.init_deps)
            state.init.append(f"{state.name} = _full({self._aligned(initial, dims, ctx)}, {state.shape!r})")
            state.update.append(
                f"n_{state.name} = _full(np.where({condition}, {source}, {state.name}), {state.shape!r})"
            )
            return Expr(f"np.where({condition}, {source}, {state.name})", dims), value_deps

        return self._memoised(ast, ctx, build)

    def _x_TrendStructure(self, ast, ctx: _Context) -> Expr:
        return self._exponential_average(
            ast, ctx,
            initial="({source}) / (1 + ({trend}) * ({average}))",
            value="_zidz(({source}) - {state}, ({average}) * np.abs({state}))",
        )

    def _x_ForecastStructure(self, ast, ctx: _Context) -> Expr:
        return self._exponential_average(
            ast, ctx,
            initial="({source}) / (1 + ({trend}))",
            value="(({source}) * (1 + _zidz(({source}) - {state}, ({average}) * {state}) * ({horizon})))",
        )

    def _exponential_average(self, ast, ctx: _Context, initial: str, value: str) -> Expr:
        """TREND and FORECAST: a state that follows the input over an average time; they differ in start and output."""

        def build():
            dims = self._context_dims(ctx)
            state = self._state(ctx, dims)
            value_deps: set = set()
            now = {"state": state.name, "source": self._part(ast.input, ctx, value_deps, dims),
                   "average": self._part(ast.average_time, ctx, value_deps, dims)}
            if hasattr(ast, "horizon"):
                now["horizon"] = self._part(ast.horizon, ctx, value_deps, dims)
            start = {"source": self._part(ast.input, ctx, state.init_deps, dims),
                     "average": self._part(ast.average_time, ctx, state.init_deps, dims),
                     "trend": self._part(ast.initial_trend, ctx, state.init_deps, dims)}
            state.init.append(f"{state.name} = _full({initial.format(**start)}, {state.shape!r})")
            state.update.append(
                f"n_{state.name} = {state.name} + ((({now['source']}) - {state.name}) / ({now['average']})) * v_time_step"
            )
            return Expr(value.format(**now), dims), value_deps

        return self._memoised(ast, ctx, build)

    # -------------------------------------------------------- classification
    def _classify(self) -> None:
        """Constants are computed once per run; the rest every time step."""
        changed = True
        for node in self.nodes.values():
            if node.kind == "dynamic" and not node.reads_states and not node.uses_time:
                node.kind = "constant"
        while changed:
            changed = False
            for node in self.nodes.values():
                if node.kind == "constant" and any(self.nodes[d].kind == "dynamic" for d in node.deps):
                    node.kind = "dynamic"
                    changed = True
        for state in self.states.values():
            if state.is_stock:
                self.nodes[state.owner].is_stock = True
        for node in self.nodes.values():
            if node.kind == "control":
                changing = sorted(self.nodes[d].name for d in node.deps if self.nodes[d].kind == "dynamic")
                if changing:
                    raise UnsupportedConstruct(
                        node.name, f"a control variable computed from variables that change over time ({changing})")


_COMPOUND = {"ArithmeticStructure", "LogicStructure", "CallStructure", "InlineLookupsStructure"}


class _Misaligned(Exception):
    def __init__(self, have, want):
        self.have, self.want = have, want
        super().__init__(f"{have} -> {want}")


def _is_number(code: str) -> bool:
    try:
        float(code)
    except ValueError:
        return False
    return True


def _merge_dims(values: list[Expr], prefer: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Axes of a combination of values: the equation's own order first, so results need no transposing."""
    present = {d for value in values for d in value.dims}
    dims: list[str] = [d for d in prefer if d in present]
    for value in values:
        for d in value.dims:
            if d not in dims:
                dims.append(d)
    return tuple(dims)


def _describe(kind: str) -> str:
    names = {
        "GetDataStructure": "GET DATA",
        "GetLookupsStructure": "GET LOOKUPS",
        "GetConstantsStructure": "GET CONSTANTS",
        "AllocateAvailableStructure": "ALLOCATE AVAILABLE",
        "AllocateByPriorityStructure": "ALLOCATE BY PRIORITY",
        "GameStructure": "GAME",
        "DataStructure": "data variables",
        "SubscriptsReferenceStructure": "a bare subscript reference",
    }
    return names.get(kind, kind.replace("Structure", "").upper())


__all__ = ["CompiledModel", "ENGINE_VERSION", "Node", "State", "UnsupportedConstruct", "compile_mdl"]

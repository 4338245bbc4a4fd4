"""The compiled backend: the same compiled model emitted as scalar numba code, one kernel per model.

:mod:`.compiler` gives every equation as numpy code over arrays whose axes are
known at compile time. Here each such statement is read back (Python's ``ast``)
and written out once per element: every subscript element becomes one scalar
assignment into a flat per-run buffer ``V`` at an offset fixed here, so the
kernel has no arrays of subscripts, no broadcasting and no Python left in its
time loop. Each run owns its buffer; slices of the runs go to threads at once
(the kernel releases the GIL).

The statements are split into functions of at most GROUP_SIZE lines (a small
model is one function: numba pays about a second per function) so numba's
compile time grows with the model instead of exploding on one huge function.
One kernel serves every kind of run: constants set per run or as points over
time, initial values and variables held with ``force=`` are inputs. The module
is written into the translation cache next to the numpy engine's and imported
from there with ``cache=True``, so only the first use of a model content pays
the compile.

What this module cannot write as scalars (the stage arrays of DELAY1/DELAY3/
DELAY N/SMOOTH N with a computed order, DELAY FIXED's pipe) raises
:class:`CompiledUnsupported`; the numpy engine then runs the model.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import logging
import math
import operator
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .compiler import CONTROL, ENGINE_VERSION, CompiledModel

log = logging.getLogger("migsd.engine")

#: Lines per generated function: numba's compile time grows faster than the size of a function.
GROUP_SIZE = 120
#: Up to this many lines in all, the kernel is one function.
INLINE_LINES = 400
#: Above this many characters of generated source the model runs on the numpy engine.
MAX_SOURCE = 20_000_000

SMALL_VENSIM = 1e-6


class CompiledUnsupported(ModelError):
    """The compiled backend cannot write a construct of the model as scalar code (the numpy engine can)."""

    def __init__(self, variable: str, construct: str):
        self.variable = variable
        self.construct = construct
        super().__init__(f"'{variable}' uses {construct}, which the compiled backend does not support")


def _num(value) -> str:
    value = float(value)
    if math.isnan(value):
        return "np.nan"
    if math.isinf(value):
        return "np.inf" if value > 0 else "(-np.inf)"
    text = repr(value)
    return f"({text})" if text.startswith("-") else text


@dataclass
class Val:
    """A value during translation: its numpy shape (run axis first, length 1) and the code of one element."""

    shape: tuple[int, ...]
    at: object  # callable: index tuple (ints, one per axis) -> scalar code
    array: np.ndarray | None = None  # known at translation time (tables, literals)


def _broadcast_index(index: tuple, shape: tuple, target: tuple) -> tuple:
    offset = len(target) - len(shape)
    return tuple(0 if size == 1 else index[offset + j] for j, size in enumerate(shape))


def _concrete(index: tuple) -> bool:
    return all(isinstance(i, (int, np.integer)) for i in index)


def _plus(term, constant: int):
    if isinstance(term, (int, np.integer)):
        return int(term) + int(constant)
    return term if constant == 0 else f"({term} + {int(constant)})" if constant > 0 else f"({term} - {-int(constant)})"


def _times(term, factor: int):
    if isinstance(term, (int, np.integer)):
        return int(term) * factor
    return term if factor == 1 else f"{term} * {factor}"


def _positions(shape) -> np.ndarray:
    return np.arange(int(np.prod(shape, dtype=int))).reshape(shape)


_UNSUPPORTED_CALLS = {
    "_stack": "a delay or smooth whose stages are an array (DELAY1, DELAY3, DELAY N, SMOOTH N with a computed order)",
    "np.concatenate": "a delay or smooth whose stages are an array (DELAY1, DELAY3, DELAY N, SMOOTH N with a computed order)",
    "_delay_order": "DELAY1, DELAY3 or DELAY N",
    "_stage_count": "SMOOTH N with a computed order",
    "_fixed_delay_length": "DELAY FIXED",
}

_ELEMENTWISE = {"np.abs": "abs", "np.exp": "math.exp", "np.sin": "math.sin", "np.cos": "math.cos",
                "np.tan": "math.tan", "np.arcsin": "math.asin", "np.arccos": "math.acos", "np.arctan": "math.atan",
                "np.sinh": "math.sinh", "np.cosh": "math.cosh", "np.tanh": "math.tanh", "np.sqrt": "math.sqrt",
                "np.log": "math.log",
                "np.trunc": "np.trunc", "np.asarray": ""}
# numpy's NaN rules: maximum/minimum keep a NaN of either side
_COMBINE = {
    "np.maximum": "_maximum({0}, {1})",
    "np.minimum": "_minimum({0}, {1})",
    "np.power": "({0} ** {1})",
    "np.logical_and": "_and({0}, {1})",
    "np.logical_or": "_or({0}, {1})",
}
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.Mod: "%"}
_FOLD = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "**": operator.pow,
         "%": operator.mod, "==": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge,
         "<": operator.lt, "<=": operator.le}
_COMPARE = {ast.Eq: "==", ast.NotEq: "!=", ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<="}


class _Translator:
    """numpy statements of the compiled model -> scalar assignments into the per-run buffer ``V``."""

    def __init__(self, compiled: CompiledModel):
        self.compiled = compiled
        self.tables = compiled.tables
        self.layout: dict[str, tuple[int, tuple[int, ...]]] = {}  # name -> (offset, shape without run axis)
        self.size = 0
        self.bound: dict[str, Val] = {}
        self.globals: dict[str, np.ndarray] = {}  # 1-D arrays the lookups search
        self._global_ids: dict[bytes, str] = {}
        self.owner = "(model)"

    # ------------------------------------------------------------ buffer
    def slot(self, name: str, shape: tuple[int, ...]) -> int:
        if name in self.layout:
            offset, have = self.layout[name]
            if have != tuple(shape):
                raise CompiledUnsupported(self.owner, f"'{name}' with shapes {have} and {shape}")
            return offset
        offset = self.size
        self.layout[name] = (offset, tuple(shape))
        self.size += int(np.prod(shape, dtype=int))
        return offset

    def cell(self, name: str, index: tuple) -> str:
        offset, shape = self.layout[name]
        if _concrete(index):
            return f"V[{offset + (int(np.ravel_multi_index(index, shape)) if shape else 0)}]"
        strides = np.cumprod((1,) + tuple(shape[::-1]))[:-1][::-1]
        terms = [str(offset)] + [str(_times(i, int(k))) for i, k, n in zip(index, strides, shape)
                                 if n > 1 and not (isinstance(i, (int, np.integer)) and i == 0)]
        return f"V[{' + '.join(terms)}]"

    def const(self, array) -> Val:
        """A value known now: literals in place, element by element, or a table read at a loop's index."""
        array = np.asarray(array)
        if array.dtype == bool:
            array = array.astype(float)

        def at(i, a=array):
            if _concrete(i):
                return _num(a[tuple(int(k) for k in i)])
            if np.all(a == a.reshape(-1)[0]) if a.size else True:
                return _num(a.reshape(-1)[0])
            return f"{self.global_array(a)}[{', '.join(str(k) for k in i)}]"

        return Val(array.shape, at, array)

    def gather(self, positions: np.ndarray, shape: tuple, index: tuple) -> tuple:
        """Index into a value of ``shape`` of the element ``positions[index]`` (flat), as code per axis.

        Slices, transposes and new axes are affine in the loop indices and written
        so; anything else reads a table of positions.
        """
        if _concrete(index):
            flat = int(positions[tuple(int(k) for k in index)])
            return tuple(int(c) for c in np.unravel_index(flat, shape)) if shape else ()
        coords = np.unravel_index(positions, shape) if shape else ()
        out = []
        for c in coords:
            c = np.asarray(c)
            if c.size == 0 or np.all(c == c.reshape(-1)[0]):
                out.append(int(c.reshape(-1)[0]) if c.size else 0)
                continue
            found = None
            for b, n in enumerate(c.shape):
                if n == 1:
                    continue
                grid = np.arange(n).reshape((1,) * b + (n,) + (1,) * (c.ndim - b - 1))
                delta = c - grid
                if np.all(delta == delta.reshape(-1)[0]):
                    found = _plus(index[b], int(delta.reshape(-1)[0]))
                    break
            if found is None:
                found = f"{self.global_array(c, integer=True)}[{', '.join(str(k) for k in index)}]"
            out.append(found)
        return tuple(out)

    def remap(self, value: Val, positions: np.ndarray) -> Val:
        """A view of ``value``: element ``i`` of the result is element ``positions[i]`` (flat) of ``value``."""
        if value.array is not None:
            return self.const(value.array.reshape(-1)[positions])
        shape = value.shape
        return Val(positions.shape, lambda i: value.at(self.gather(positions, shape, i)))

    def name_value(self, name: str) -> Val:
        offset, shape = self.layout[name]
        return Val((1,) + shape, lambda i, n=name: self.cell(n, tuple(i[1:])))

    def global_array(self, values: np.ndarray, integer: bool = False) -> str:
        values = np.ascontiguousarray(values, dtype=np.int64 if integer else float)
        key = values.tobytes() + bytes(str(values.shape), "ascii")
        if key not in self._global_ids:
            name = f"G{len(self._global_ids)}"
            self._global_ids[key] = name
            self.globals[name] = values
        return self._global_ids[key]

    # ------------------------------------------------------- statements
    def statements(self, lines: list[str], owner: str) -> list[str]:
        """Scalar code of numpy statements (each a line of the compiled model)."""
        self.owner = owner
        out: list[str] = []
        for line in lines:
            try:
                tree = ast.parse(line)
            except SyntaxError as error:
                raise CompiledUnsupported(owner, f"the statement {line!r}") from error
            for statement in tree.body:
                out.extend(self.statement(statement, line))
        return out

    def statement(self, node, line: str) -> list[str]:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Name):
                return self.assign_name(target.id, value, line)
            if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                return self.assign_part(target.value.id, target.slice, value)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and _dotted(node.value.func) == "np.copyto":
            call = node.value
            target, source = call.args[0].id, self.expr(call.args[1])
            where = [k.value for k in call.keywords if k.arg == "where"]
            mask = self.expr(where[0]).array if where else None
            if mask is None:
                raise CompiledUnsupported(self.owner, "np.copyto with a computed mask")
            offset, shape = self.layout[target]
            full = (1,) + shape
            mask = np.broadcast_to(mask, full)
            return [f"{self.cell(target, i[1:])} = {source.at(_broadcast_index(i, source.shape, full))}"
                    for i in np.ndindex(full) if mask[i]]
        raise CompiledUnsupported(self.owner, f"the statement {line!r}")

    def assign_name(self, name: str, value, line: str) -> list[str]:
        if isinstance(value, ast.Call) and _dotted(value.func) in ("np.empty", "np.full", "np.empty_like"):
            func = _dotted(value.func)
            if func == "np.empty_like":
                shape = self.layout[value.args[0].id][1]
            elif isinstance(value.args[0], ast.BinOp):  # np.empty((_rows(...),) + shape)
                shape = tuple(ast.literal_eval(value.args[0].right))
            else:
                raise CompiledUnsupported(self.owner, f"the statement {line!r}")
            self.slot(name, shape)
            if func == "np.full":
                fill = self.expr(value.args[1])
                return [f"{self.cell(name, i)} = {fill.at(())}" for i in np.ndindex(shape)]
            return []
        if name == "_outflow":
            raise CompiledUnsupported(self.owner, _UNSUPPORTED_CALLS["_delay_order"])
        result = self.expr(value)
        shape = self.target_shape(name, result)
        self.slot(name, shape)
        full = (1,) + shape
        try:
            np.broadcast_shapes(result.shape, full)
        except ValueError:
            raise CompiledUnsupported(self.owner, f"a value of shape {result.shape} stored as {full}") from None
        if len(result.shape) > len(full) or np.broadcast_shapes(result.shape, full) != full:
            raise CompiledUnsupported(self.owner, f"a value of shape {result.shape} stored as {full}")
        return _loops(full, lambda i: f"{self.cell(name, i[1:])} = {result.at(_broadcast_index(i, result.shape, full))}")

    def target_shape(self, name: str, result: Val) -> tuple[int, ...]:
        if name in self.layout:
            return self.layout[name][1]
        nodes, states = self.compiled.nodes, self.compiled.states
        if name.startswith("v_") and name[2:] in nodes:
            return nodes[name[2:]].shape
        base = name[2:] if name.startswith("n_") else name
        if base in states:
            return states[base].shape
        if not result.shape:
            return ()
        if result.shape[0] != 1:
            raise CompiledUnsupported(self.owner, f"a value with a leading axis of {result.shape[0]}")
        return result.shape[1:]

    def assign_part(self, name: str, index_node, value) -> list[str]:
        """``v_x[...] = value``: the index is worked out here, on the positions of ``v_x``'s elements."""
        offset, shape = self.layout[name]
        positions = _positions((1,) + shape)
        index = self.index_value(index_node)
        chosen = positions[index]
        result = self.expr(value)
        if np.broadcast_shapes(result.shape, chosen.shape) != chosen.shape:
            raise CompiledUnsupported(self.owner, f"a value of shape {result.shape} put into {chosen.shape}")
        def line(i):
            element = self.gather(chosen, (1,) + shape, i)
            return f"{self.cell(name, tuple(element[1:]))} = {result.at(_broadcast_index(i, result.shape, chosen.shape))}"

        return _loops(chosen.shape, line)

    def index_value(self, node):
        """A subscript's index as Python objects (ints, slices, None, lists, arrays from ``np.ix_``)."""
        parts = node.elts if isinstance(node, ast.Tuple) else [node]
        source = ", ".join(ast.unparse(part) for part in parts)
        try:
            return eval(f"np.s_[{source}]", {"np": np, "slice": slice, "__builtins__": {}})  # noqa: S307 - the compiler's own index code
        except Exception as error:  # an index that depends on run-time values cannot be written as scalars
            raise CompiledUnsupported(self.owner, f"the index [{source}]") from error

    # ------------------------------------------------------ expressions
    def expr(self, node) -> Val:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
                return self.const(np.float64(node.value))
            if isinstance(node.value, bool):
                return self.const(np.float64(node.value))
            raise CompiledUnsupported(self.owner, f"the constant {node.value!r}")
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted == "np.nan":
                return self.const(np.float64(np.nan))
            if dotted == "np.pi":
                return self.const(np.float64(np.pi))
            raise CompiledUnsupported(self.owner, f"'{dotted}'")
        if isinstance(node, ast.NamedExpr):
            value = self.expr(node.value)
            self.bound[node.target.id] = value
            return value
        if isinstance(node, ast.BinOp):
            return self.binary(node)
        if isinstance(node, ast.UnaryOp):
            value = self.expr(node.operand)
            if isinstance(node.op, ast.USub):
                return self.map(lambda a: f"(-{a})", [value], lambda a: -a)
            if isinstance(node.op, ast.UAdd):
                return value
            if isinstance(node.op, ast.Not):
                return self.map(lambda a: f"({a} == 0)", [value], lambda a: np.logical_not(a))
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
            operator = _COMPARE[type(node.ops[0])]
            left, right = self.expr(node.left), self.expr(node.comparators[0])
            return self.map(lambda a, b: f"({a} {operator} {b})", [left, right], _FOLD[operator])
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise CompiledUnsupported(self.owner, f"the expression {ast.unparse(node)!r}")

    def name(self, ident: str) -> Val:
        if ident in self.bound:
            return self.bound[ident]
        if ident == "time":
            return Val((), lambda i: "time")
        if ident.startswith("v_") and ident[2:] in CONTROL:
            return Val((), lambda i, k=CONTROL.index(ident[2:]): f"C[{k}]")
        if ident in self.layout:
            return self.name_value(ident)
        if ident in self.tables:
            return self.const(self.tables[ident])
        raise CompiledUnsupported(self.owner, f"the name '{ident}' before it is computed")

    def map(self, emit, values: list[Val], fold=None) -> Val:
        """An elementwise operation on broadcast operands (folded when all are known now)."""
        if fold is not None and all(v.array is not None for v in values):
            with np.errstate(all="ignore"):
                return self.const(fold(*[v.array for v in values]))
        shape = np.broadcast_shapes(*[v.shape for v in values])

        def at(i):
            return emit(*[v.at(_broadcast_index(i, v.shape, shape)) for v in values])

        return Val(shape, at)

    def binary(self, node) -> Val:
        operator = _BINOPS.get(type(node.op))
        if operator is None:
            raise CompiledUnsupported(self.owner, f"the operator in {ast.unparse(node)!r}")
        left, right = self.expr(node.left), self.expr(node.right)
        return self.map(lambda a, b: f"({a} {operator} {b})", [left, right], _FOLD[operator])

    def subscript(self, node) -> Val:
        value = self.expr(node.value)
        index = self.index_value(node.slice)
        positions = _positions(value.shape)[index]
        return self.remap(value, positions)

    def call(self, node) -> Val:
        func = _dotted(node.func)
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("transpose", "astype") and not (
                func or "").startswith("np."):  # a method of a value: .transpose(...), .astype(bool)
            owner = self.expr(node.func.value)
            method = node.func.attr
            if method == "transpose":
                perm = tuple(ast.literal_eval(node.args[0])) if len(node.args) == 1 else tuple(
                    ast.literal_eval(a) for a in node.args)
                return self.remap(owner, _positions(owner.shape).transpose(perm))
            if method == "astype" and owner.array is not None:
                return self.const(owner.array.astype(bool))
            raise CompiledUnsupported(self.owner, f"the method .{method}()")
        if func in _UNSUPPORTED_CALLS:
            raise CompiledUnsupported(self.owner, _UNSUPPORTED_CALLS[func])
        if node.keywords and func not in ("np.sum", "np.prod", "np.min", "np.max", "np.take"):
            raise CompiledUnsupported(self.owner, f"{func} with keywords")
        if func == "np.logical_not" and len(node.args) == 1:  # Vensim's :NOT:, 1 where its argument is 0
            return self.map(lambda a: f"({a} == 0)", [self.expr(node.args[0])], np.logical_not)
        if func in _ELEMENTWISE:
            (value,) = [self.expr(a) for a in node.args]
            name = _ELEMENTWISE[func]
            return self.map(lambda a: f"{name}({a})", [value], getattr(np, func[3:]) if name else (lambda a: a))
        if func == "_full":
            value = self.expr(node.args[0])
            shape = (1,) + tuple(ast.literal_eval(node.args[1]))
            if np.broadcast_shapes(value.shape, shape) != shape:
                raise CompiledUnsupported(self.owner, f"_full of shape {value.shape} to {shape}")
            if value.array is not None:
                return self.const(np.broadcast_to(value.array, shape))
            return Val(shape, lambda i: value.at(_broadcast_index(i, value.shape, shape)))
        if func == "np.take":
            value = self.expr(node.args[0])
            axis = [k.value for k in node.keywords if k.arg == "axis"]
            where = ast.literal_eval(node.args[1])
            axis = ast.literal_eval(axis[0]) if axis else ast.literal_eval(node.args[2])
            return self.remap(value, np.take(_positions(value.shape), where, axis=axis))
        if func in ("np.sum", "np.prod", "np.min", "np.max"):
            return self.reduce(func, self.expr(node.args[0]), node)
        args = [self.expr(a) for a in node.args]
        if func in _COMBINE:
            template = _COMBINE[func]
            return self.map(lambda a, b: template.format(a, b), args, getattr(np, func[3:]))
        if func == "np.where":
            return self.map(lambda c, a, b: f"_where({c}, {a}, {b})", args, np.where)
        if func == "_xidz":
            return self.map(lambda n, d, f: f"_xidz({n}, {d}, {f})", args)
        if func == "_zidz":
            return self.map(lambda n, d: f"_zidz({n}, {d})", args)
        if func == "_quantum":
            return self.map(lambda a, b: f"_quantum({a}, {b})", args)
        if func == "_modulo":
            return self.map(lambda a, b: f"({a} - _quantum({a}, {b}))", args)
        if func == "_step":
            return self.map(lambda t, dt, v, s: f"({v} * ({t} + {dt} / 2 > {s}))", args)
        if func == "_ramp":
            if len(args) == 5 and not (isinstance(node.args[4], ast.Constant) and node.args[4].value is None):
                return self.map(lambda t, dt, k, s, f: f"((({t} + {SMALL_VENSIM!r} > {s}) * {k}) * (_minimum({f}, {t}) - {s}))",
                                args)
            return self.map(lambda t, dt, k, s: f"((({t} + {SMALL_VENSIM!r} > {s}) * {k}) * ({t} - {s}))", args[:4])
        if func == "_pulse":
            return self.map(lambda t, dt, s, w: f"_pulse({t}, {s}, {w})", args)
        if func == "_pulse_train":
            return self.map(lambda t, dt, s, r, w, e: f"_pulse_train({t}, {s}, {r}, {w}, {e})", args)
        if func == "np.interp":
            x, xs, ys = args
            if xs.array is None or ys.array is None or xs.array.ndim != 1 or ys.array.ndim != 1:
                raise CompiledUnsupported(self.owner, "np.interp over computed tables")
            gx, gy = self.global_array(xs.array), self.global_array(ys.array)
            return self.map(lambda a: f"np.interp({a}, {gx}, {gy})", [x])
        if func == "_lookup_grid":
            x, grid, ys = args
            g = self.global_array(grid.array)
            return self.table_lookup(x, ys, lambda a, row, index, shape: f"_lookup_grid({a}, {g}, {row})")
        if func == "_lookup":
            x, xs, ys = args
            kind = {"interpolate": 0, "hold_backward": 1, "extrapolate": 2}[ast.literal_eval(node.args[3])]
            if xs.array is None:
                raise CompiledUnsupported(self.owner, "a lookup over computed tables")
            xs_shape = xs.array.shape

            def emit(a, row, index, shape):
                xrow = self.row(xs.array, _broadcast_index(index, xs_shape[:-1], shape))
                return f"_lookup({a}, {xrow}, {row}, {kind})"

            return self.table_lookup(x, ys, emit, others=[xs])
        raise CompiledUnsupported(self.owner, f"the function {func}")

    def table_lookup(self, x: Val, ys: Val, emit, others=()) -> Val:
        """A lookup per element: the table row of each element is a 1-D array known now."""
        if ys.array is None or any(o.array is None for o in others):
            raise CompiledUnsupported(self.owner, "a lookup over computed tables")
        table = ys.array
        shapes = [x.shape, table.shape[:-1]] + [o.array.shape[:-1] for o in others]
        shape = np.broadcast_shapes(*shapes)

        def at(i):
            row = self.row(table, _broadcast_index(i, table.shape[:-1], shape))
            argument = x.at(_broadcast_index(i, x.shape, shape))
            return emit(argument, row, i, shape)

        return Val(shape, at)

    def row(self, table: np.ndarray, index: tuple) -> str:
        """The points of one element's lookup table: a 1-D table, or a row of one read at a loop's index."""
        if _concrete(index):
            return self.global_array(table[tuple(int(k) for k in index) + (slice(None),)])
        return f"{self.global_array(table)}[{', '.join(str(k) for k in index)}]"

    def reduce(self, func: str, value: Val, node) -> Val:
        axis = [k.value for k in node.keywords if k.arg == "axis"]
        if not axis:
            raise CompiledUnsupported(self.owner, f"{func} without an axis")
        axis = ast.literal_eval(axis[0])
        positions = np.moveaxis(_positions(value.shape), axis, -1)
        combine = {"np.sum": "({0} + {1})", "np.prod": "({0} * {1})", "np.min": "_minimum({0}, {1})",
                   "np.max": "_maximum({0}, {1})"}[func]

        def at(i):
            terms = [value.at(self.gather(positions[..., k], value.shape, i)) for k in range(positions.shape[-1])]
            total = terms[0]
            for term in terms[1:]:
                total = combine.format(total, term)
            return total

        return Val(positions.shape[:-1], at)


_LOOP_NAMES = iter(range(1 << 62))


def _loops(shape: tuple, line) -> list[str]:
    """One assignment per element, as nested loops over the axes longer than 1.

    Every loop has its own index name: numba's SSA pass slows down a lot when one
    name is defined by many loops of a function.
    """
    index, lines, depth = [], [], 0
    for size in shape:
        if size == 1:
            index.append(0)
            continue
        name = f"i{next(_LOOP_NAMES)}"
        lines.append("    " * depth + f"for {name} in range({size}):")
        index.append(name)
        depth += 1
    lines.append("    " * depth + line(tuple(index)))
    return lines


def _dotted(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


# Scalar helpers of the generated module: the arithmetic of runtime.py's array helpers, one element at a time.
_HELPERS = '''
# explicit signatures, so that one compiled version serves every caller (numba would otherwise compile
# one per call site whose arguments it types differently); tables are the kernel's read-only globals
F1 = nt.Array(nt.float64, 1, "A")
RF, RF2, RF3, RF4 = (nt.Array(nt.float64, n, "A", readonly=True) for n in (1, 2, 3, 4))
RI = nt.Array(nt.int64, 1, "A", readonly=True)
RB, RB2 = (nt.Array(nt.boolean, n, "A", readonly=True) for n in (1, 2))

@njit(nt.float64(nt.float64, RF, nt.int64, RF), cache=True, error_model="numpy")
def _series_at(time, knots, count, values):
    if time <= knots[0]:
        return values[0]
    if time >= knots[count - 1]:
        return values[count - 1]
    j = np.searchsorted(knots[:count], time, side="right") - 1
    slope = (values[j + 1] - values[j]) / (knots[j + 1] - knots[j])
    return slope * (time - knots[j]) + values[j]


@njit(nt.float64(nt.float64, nt.float64), cache=True, error_model="numpy")
def _maximum(a, b):
    return a if (a >= b or a != a) else b


@njit(nt.float64(nt.float64, nt.float64), cache=True, error_model="numpy")
def _minimum(a, b):
    return a if (a <= b or a != a) else b


@njit(nt.float64(nt.float64, nt.float64), cache=True, error_model="numpy")
def _quantum(a, b):
    return a if b < 1e-06 else b * np.trunc(a / b)


@njit(nt.void(F1, F1, RI, RI, RI), cache=True, error_model="numpy")
def _save(V, out, where, at, cells):
    """Copy the values saved (``where`` >= 0: their place in ``out``) from the run's buffer."""
    for j in range(where.shape[0]):
        o = where[j]
        if o >= 0:
            for e in range(cells[j]):
                out[o + e] = V[at[j] + e]


@njit(nt.void(F1, RF, RB, nt.int64, nt.int64), cache=True, error_model="numpy")
def _hold(V, FV, FM, offset, n):
    for e in range(n):
        if FM[offset + e]:
            V[offset + e] = FV[offset + e]


@njit(nt.void(F1, nt.int64, nt.int64, nt.int64, RI, RB2, RF3), cache=True, error_model="numpy")
def _initial(V, r, j, offset, where, IM, IV):
    for e in range(where.size):
        if IM[j, where[e]]:
            V[offset + e] = IV[r, j, where[e]]


@njit(nt.void(F1, nt.int64, nt.float64, nt.int64, nt.int64, nt.int64, RI, RI, RF, RF2, RF2, RI, RF4), cache=True, error_model="numpy")
def _given(V, r, time, j, offset, n, PG, PO, PV1, PVR, SK, SN, SV):
    """A constant the run sets: one value for every run (1), one per run (2), or points over time (3)."""
    for e in range(n):
        if PG[j] == 1:
            V[offset + e] = PV1[PO[j] + e]
        elif PG[j] == 2:
            V[offset + e] = PVR[r, PO[j] + e]
        else:
            V[offset + e] = _series_at(time, SK[PO[j]], SN[PO[j]], SV[r, PO[j], e])


@njit(nt.boolean(F1, RI), cache=True, error_model="numpy")
def _all_finite(V, cells):
    for j in range(cells.shape[0]):
        if not np.isfinite(V[cells[j]]):
            return False
    return True


@njit(nt.float64(nt.float64, nt.float64, nt.float64), cache=True, error_model="numpy")
def _where(c, a, b):
    return a if c else b


@njit(nt.boolean(nt.float64, nt.float64), cache=True, error_model="numpy")
def _and(a, b):
    return (a != 0) and (b != 0)


@njit(nt.boolean(nt.float64, nt.float64), cache=True, error_model="numpy")
def _or(a, b):
    return (a != 0) or (b != 0)


@njit(nt.float64(nt.float64, nt.float64, nt.float64), cache=True, error_model="numpy")
def _xidz(a, b, x):
    return x if abs(b) < 1e-06 else a / b


@njit(nt.float64(nt.float64, nt.float64), cache=True, error_model="numpy")
def _zidz(a, b):
    return 0.0 if abs(b) < 1e-06 else a / b


@njit(nt.float64(nt.float64, nt.float64, nt.float64), cache=True, error_model="numpy")
def _pulse(time, start, width):
    return 1.0 if (start - 1e-06 <= time and time < start + width) else 0.0


@njit(nt.float64(nt.float64, nt.float64, nt.float64, nt.float64, nt.float64), cache=True, error_model="numpy")
def _pulse_train(time, start, repeat, width, end):
    if not (start <= time and time < end):
        return 0.0
    if repeat > 0:
        phase = np.mod(time - start + 1e-06, repeat)
    else:
        phase = np.inf
    return 1.0 if phase < width else 0.0


@njit(nt.float64(nt.float64, RF, RF), cache=True, error_model="numpy")
def _lookup_grid(x, grid, ys):
    points = grid.size
    if points == 1:
        return ys[0]
    clipped = min(max(x, grid[0]), grid[-1]) if x == x else x
    right = np.searchsorted(grid, clipped, side="right")
    right = min(max(right, 1), points - 1)
    left = right - 1
    y0 = ys[left]
    y1 = ys[right]
    return y0 + (y1 - y0) * ((clipped - grid[left]) / (grid[right] - grid[left]))


@njit(nt.float64(nt.float64, RF, RF, nt.int64), cache=True, error_model="numpy")
def _lookup(x, xs, ys, kind):
    points = xs.size
    if points == 1:
        return ys[0]
    above = 0
    for j in range(points):
        if xs[j] <= x:
            above += 1
    if kind == 1:
        index = min(max(above - 1, 0), points - 1)
        return ys[index]
    right = min(max(above, 1), points - 1)
    left = right - 1
    x0 = xs[left]
    x1 = xs[right]
    y0 = ys[left]
    y1 = ys[right]
    width = x1 - x0
    safe = width if width > 0 else 1.0
    inside = y0 + (y1 - y0) * (x - x0) / safe if width > 0 else y1
    first_x = xs[0]
    first_y = ys[0]
    last_x = xs.max()
    last_y = ys[points - 1]
    if kind == 2:
        low = (ys[1] - ys[0]) / (xs[1] - xs[0] if xs[1] > xs[0] else 1.0)
        high = (y1 - y0) / safe
        below = first_y + low * (x - first_x)
        beyond = last_y + high * (x - last_x)
    else:
        below = first_y
        beyond = last_y
    if x < first_x:
        return below
    if x > last_x:
        return beyond
    return inside


'''

_ARGS = "V, r, time, C, PG, PO, PV1, PVR, SK, SN, SV, FG, FS, FV, FM"
# numba types of every argument: given once, so a function is compiled once (a parallel caller would
# otherwise compile its callees again for other array layouts)
# ``V`` is C-contiguous: the elements of one equation (4 regions, 16 pairs) are adjacent cells, which the
# SLP vectoriser (see :func:`_vectorised`) packs into one vector operation when it knows the stride is 1
_TYPES = {"V": "f8[::1]", "r": "i8", "time": "f8", "C": "f8[:]", "PG": "i8[:]", "PO": "i8[:]", "PV1": "f8[:]",
          "PVR": "f8[:, :]", "SK": "f8[:, :]", "SN": "i8[:]", "SV": "f8[:, :, :, :]", "FG": "b1[:]", "FS": "f8[:]", "FV": "f8[:, :]",
          "FM": "b1[:]", "IG": "b1[:]", "IM": "b1[:, :]", "IV": "f8[:, :, :]", "times": "f8[:]", "save": "b1[:]",
          "OD": "i8[:]", "OCT": "i8[:]", "OC": "i8[:]", "OUT": "f8[:, :, :]", "OUTC": "f8[:, :]", "FIN": "b1[:]",
          "XW": "i8[:]", "XA": "i8[:]", "XN": "i8[:]", "OUTX": "f8[:, :, :]", "KW": "i8[:]", "KA": "i8[:]",
          "KN": "i8[:]", "OUTK": "f8[:, :]", "lo": "i8", "hi": "i8"}


def _signature(arguments: str) -> str:
    return f"i8({', '.join(_TYPES[a.strip()] for a in arguments.split(','))})"


@dataclass
class Kernel:
    """A generated, compiled kernel and the layout of its inputs and outputs."""

    simulate: object
    constants: list[str]  # constants a run may set (index = slot in PG/PO)
    stocks: list[str]  # stock owners whose initial values a run may set
    forcible: list[str]  # variables computed by equations that force= may hold
    layout: dict[str, tuple[int, tuple[int, ...]]]
    saved_dynamic: list[str]
    saved_constant: list[str]
    path: Path | None = None

    @functools.cached_property
    def buffer_size(self) -> int:
        """Cells of a run's buffer ``V`` (every run packs against it: worked out once)."""
        return max(max((o + int(np.prod(s, dtype=int)) for o, s in self.layout.values()), default=0), 1)


def generate_kernel(compiled: CompiledModel, plan) -> tuple[str, dict]:
    """Source of the numba module for ``compiled`` and the layout the driver needs to pack inputs.

    One kernel serves every run of the model: which constants a run sets, which
    are given as points over time (then every constant is recomputed each time
    step, in the same order, before the equations that vary) and which
    variables ``force=`` holds are inputs, not variants. ``plan`` is the numpy
    backend's :func:`.codegen.schedule` of the model, so both compute in one order.
    """
    global _LOOP_NAMES
    _LOOP_NAMES = iter(range(1 << 62))  # the same model always gives the same source
    nodes, states = compiled.nodes, compiled.states
    tr = _Translator(compiled)
    # every variable and state gets its cells first, so any order of reference finds them
    for ident, node in nodes.items():
        if node.kind in ("constant", "dynamic"):
            tr.slot(f"v_{ident}", node.shape)
    for name, state in states.items():
        tr.slot(name, state.shape)
        tr.slot(f"n_{name}", state.shape)
        if state.extra:  # name the construct by the helper its initial value calls
            used = [c for c in ("_fixed_delay_length", "_delay_order", "_stage_count") if c in "\n".join(state.init)]
            raise CompiledUnsupported(nodes[state.owner].name, _UNSUPPORTED_CALLS[used[0] if used else "_stack"])
    settable = [i for i in plan.constants if not nodes[i].internal]
    stock_owners = sorted({s.owner for s in states.values() if s.is_stock})
    forcible = [i for i in plan.dynamic_names if not nodes[i].internal]

    def cells(ident):
        return int(np.prod(nodes[ident].shape, dtype=int))

    def node_lines(ident: str) -> list[str]:
        node = nodes[ident]
        lines = tr.statements(node.code, node.name)
        if not node.internal:  # held at given values (Vensim's test inputs): elements not given keep their equation
            j, offset = forcible.index(ident), tr.layout[f"v_{ident}"][0]
            lines.append(f"if FG[{j}] and time >= FS[{j}] - {SMALL_VENSIM!r}: "
                         f"_hold(V, FV[r % FV.shape[0]], FM, {offset}, {cells(ident)})")
        return lines

    constant_lines: list[str] = []
    for ident in plan.constants:
        node = nodes[ident]
        if node.internal:
            constant_lines += tr.statements(node.code, node.name)
            continue
        j = settable.index(ident)
        offset = tr.layout[f"v_{ident}"][0]
        own = tr.statements(node.code, node.name)
        n = cells(ident)
        constant_lines.append(f"if PG[{j}] == 0:")
        constant_lines += ["    " + line for line in own] or ["    pass"]
        constant_lines += ["else:", f"    _given(V, r, time, {j}, {offset}, {n}, PG, PO, PV1, PVR, SK, SN, SV)"]

    init_lines: list[str] = []
    for item in plan.init_order:
        if item in states:
            state = states[item]
            init_lines += tr.statements(state.init, nodes[state.owner].name)
            if state.is_stock:
                j = stock_owners.index(state.owner)
                owner = nodes[state.owner]
                where = np.asarray(_positions(owner.shape)[eval(f"np.s_[{state.location or '...'}]", {"np": np})])  # noqa: S307 - the compiler's own index
                table = tr.global_array(where.reshape(-1), integer=True)
                offset = tr.layout[item][0]
                init_lines.append(f"if IG[{j}]: _initial(V, r, {j}, {offset}, {table}, IM, IV)")
        else:
            init_lines += node_lines(item)

    step_lines: list[str] = []
    for ident in plan.step_order:
        step_lines += node_lines(ident)
    update_lines: list[str] = []
    for name, state in states.items():
        update_lines += tr.statements(state.update, nodes[state.owner].name)
    for name, state in states.items():
        if state.update:
            offset, shape = tr.layout[name]
            new = tr.layout[f"n_{name}"][0]
            update_lines += [f"for e in range({int(np.prod(shape, dtype=int))}):", f"    V[{offset} + e] = V[{new} + e]"]

    saved_constant = settable + [i for i in plan.constants if nodes[i].internal and False]
    functions: list[str] = []
    calls: dict[str, list[str]] = {}
    parts = (("constants", constant_lines), ("initial", init_lines), ("step", step_lines), ("update", update_lines))
    # numba pays about a second per function whatever its size: a small model is one function
    inline = sum(len(lines) for _, lines in parts) <= INLINE_LINES
    for part, lines in parts:
        calls[part] = []
        if inline:
            calls[part] = list(lines)
            continue
        for number, group in enumerate(_groups(lines)):
            name = f"{part}_{number}"
            calls[part].append(f"{name}({_ARGS})")
            arguments = _ARGS + (", IG, IM, IV" if part == "initial" else "")
            functions.append(
                f"@njit(\"{_signature(arguments)}\", cache=True, error_model=\"numpy\")\ndef {name}({_ARGS}):\n"
                + "\n".join("    " + line for line in group) + "\n    return 0\n"
            )
    initial_args = _ARGS + ", IG, IM, IV"
    calls["initial"] = [c.replace(_ARGS, initial_args) for c in calls["initial"]]
    functions = [f.replace(f"({_ARGS}):", f"({initial_args}):") if "def initial_" in f else f for f in functions]

    def places(idents):
        return [tr.layout[f"v_{i}"][0] for i in idents], [cells(i) for i in idents]

    constant_at, constant_cells = places(settable)
    dynamic_at, dynamic_cells = places(forcible)
    tables = {"CONSTANT_AT": constant_at, "CONSTANT_CELLS": constant_cells, "DYNAMIC_AT": dynamic_at,
              "DYNAMIC_CELLS": dynamic_cells}
    stock_cells = [tr.layout[name][0] + e for name, state in states.items() if state.is_stock
                   for e in range(int(np.prod(state.shape, dtype=int)))]
    tables["STOCK_CELLS"] = stock_cells
    for name, values in tables.items():
        tr.globals[name] = np.asarray(values or [0], dtype=np.int64)
    # XW/XA/XN -> OUTX and KW/KA/KN -> OUTK copy any slots of the buffer (internal ones too) at the saved
    # steps and once after the initial values: what the loop scores read back (see :func:`run_kernel`)
    signature = ("times, save, C, PG, PO, PV1, PVR, SK, SN, SV, FG, FS, FV, FM, IG, IM, IV, OD, OCT, OC, OUT, OUTC, FIN, "
                 "XW, XA, XN, OUTX, KW, KA, KN, OUTK")
    one_run = [
        f"@njit(\"{_signature('r, ' + signature)}\", cache=True, error_model=\"numpy\")",
        f"def one_run(r, {signature}):",
        "    last = times.shape[0] - 1",
        "    varying = False",
        "    for j in range(PG.shape[0]):",
        "        if PG[j] == 3:",
        "            varying = True",
        f"    V = np.full({max(tr.size, 1)}, np.nan)",
        "    time = C[0]",
    ]
    one_run += ["    " + c for c in calls["constants"] + calls["initial"]]
    one_run += [
        "    _save(V, OUTC[r], OC, CONSTANT_AT, CONSTANT_CELLS)",
        "    if KW.shape[0] > 0:",
        "        _save(V, OUTK[r], KW, KA, KN)",
        "    k = 0",
        "    for n in range(times.shape[0]):",
        "        time = times[n]",
        "        if varying and n > 0:",
    ]
    one_run += ["            " + c for c in calls["constants"]] or ["            pass"]
    one_run += ["        " + c for c in calls["step"]]
    one_run += [
        "        if save[n]:",
        "            _save(V, OUT[r, k], OCT, CONSTANT_AT, CONSTANT_CELLS)",
        "            _save(V, OUT[r, k], OD, DYNAMIC_AT, DYNAMIC_CELLS)",
        "            if XW.shape[0] > 0:",
        "                _save(V, OUTX[r, k], XW, XA, XN)",
        "            k += 1",
        "        if n == last:",
        "            break",
    ]
    one_run += ["        " + c for c in calls["update"]]
    # a stock that once turns NaN or infinite stays so, so its end value says whether the run broke
    one_run.append("    FIN[r] = _all_finite(V, STOCK_CELLS)")
    one_run.append("    return 0")
    # runs lo..hi, without the GIL: the driver runs slices of a chunk on threads at once (numba's parallel
    # loops would cost seconds more of compile per model for the same effect)
    kernel = one_run + [
        "",
        "",
        f"@njit(\"{_signature('lo, hi, ' + signature)}\", cache=True, error_model=\"numpy\", nogil=True)",
        f"def simulate(lo, hi, {signature}):",
        "    for r in range(lo, hi):",
        f"        one_run(r, {signature})",
        "    return 0",
    ]

    header = (
        f"# Generated by migsd's compiled backend {ENGINE_VERSION} from {Path(compiled.source).name}; do not edit.\n"
        "import math\n\nimport numpy as np\nfrom numba import njit\n"
        f"from {_helpers_name()} import {', '.join(_HELPER_NAMES)}\n"
    )
    tables = "".join(f"{name} = np.array({values.tolist()!r}, dtype=np.{values.dtype})\n"
                     for name, values in tr.globals.items())
    source = header + tables + "\n\n" + "\n\n".join(functions) + "\n\n" + "\n".join(kernel) + "\n"
    if len(source) > MAX_SOURCE:
        raise CompiledUnsupported("(model)", f"{len(source):,} characters of scalar code (at most {MAX_SOURCE:,})")
    meta = dict(constants=settable, stocks=stock_owners, forcible=forcible, layout=tr.layout,
                saved_dynamic=forcible, saved_constant=settable)
    return source, meta


def _groups(lines: list[str]):
    """Lines in groups of about GROUP_SIZE, never splitting an indented block from its header."""
    group: list[str] = []
    for line in lines:
        if group and len(group) >= GROUP_SIZE and not line.startswith((" ", "elif", "else")):
            yield group
            group = []
        group.append(line)
    if group:
        yield group


_HELPER_NAMES = [line.split("(")[0][4:] for line in _HELPERS.splitlines() if line.startswith("def ")]



def _helpers_name() -> str:
    """Module name of the scalar helpers, by their content: every model's kernel shares them (compiled once)."""
    return f"migsd_kernel_helpers_{hashlib.sha256(_HELPERS.encode()).hexdigest()[:12]}"


def _import(name: str, path: Path, source: str, per_path: bool = False):
    """The module ``name`` from ``path`` (written with ``source`` if absent), imported once per process.

    With ``per_path``, the module is imported once per file (named after ``name`` and
    the file's folder), so that every cache folder it is loaded from holds numba's
    compiled code too; else once per process, as ``name``.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(source)
        os.replace(temporary, path)
    if per_path:
        name = f"{name}_{hashlib.sha256(str(path.resolve().parent).encode()).hexdigest()[:8]}"
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_kernel(compiled: CompiledModel, folder: Path | None, plan) -> Kernel:
    """The compiled kernel of a model: generated and written into ``folder`` once, compiled by numba once.

    numba keeps what it compiled beside each module file (``__pycache__``), so a
    later process loads the machine code instead of compiling it.
    """
    source, meta = generate_kernel(compiled, plan)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="migsd-kernel-"))
    folder = Path(folder)
    helpers = _helpers_name()
    folder.mkdir(parents=True, exist_ok=True)
    # processes sharing the cache (pytest's workers) wait for one another's compile, then load it
    with _locked(folder.parent / f"{helpers}.lock"):
        _import(helpers, folder.parent / f"{helpers}.py",
                "# Generated by migsd's compiled backend: the scalar helpers every kernel calls; do not edit.\n"
                "import math\n\nimport numpy as np\nfrom numba import njit, types as nt\n" + _HELPERS)
    name = f"migsd_kernel_{digest}"
    with _locked(folder / "kernel.lock"), _vectorised():
        module = _import(name, folder / f"{name}.py", source, per_path=True)
    # the functions are compiled (or loaded from numba's cache) as the module is imported: from now on
    # engine="auto" can pick the kernel in any process, without paying a compile
    marker = folder / READY
    text = f"{_numba_version()}\n{name}\n"
    if not marker.exists() or marker.read_text(encoding="utf-8") != text:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=READY, suffix=".partial")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, marker)
    return Kernel(simulate=module.simulate, path=folder / f"{name}.py", **meta)


@contextmanager
def _vectorised():
    """numba's SLP vectoriser on while the kernel compiles, as it was before afterwards.

    numba leaves LLVM's straight-line (SLP) vectoriser off by default to save compile time. In a kernel the
    elements of an equation are unrolled scalar statements on adjacent cells, exactly what it packs into
    vector operations: the shipped model's kernel ran about 1.5 times faster with it, for about the same
    compile time (benchmarks/compiled_engine.py). The setting is read when a function is compiled, and a
    kernel loaded from numba's cache is not compiled, so other numba code of the process keeps its own.
    """
    import numba

    before = numba.config.SLP_VECTORIZE
    numba.config.SLP_VECTORIZE = 1
    try:
        yield
    finally:
        numba.config.SLP_VECTORIZE = before


@contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` for the block (none where the system has no ``fcntl``)."""
    try:
        import fcntl
    except ImportError:  # Windows: two processes may then compile the same kernel, each correctly
        yield
        return
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: Written beside a kernel once numba has compiled it (numba's version, the kernel module's name).
READY = "kernel.ready"


def _numba_version() -> str:
    import numba

    return f"numba {numba.__version__}"


def kernel_compiled(folder: Path) -> bool:
    """Whether a kernel was compiled into the engine cache ``folder`` by this numba (so loading it is quick)."""
    marker = Path(folder) / READY
    try:
        version, name = marker.read_text(encoding="utf-8").splitlines()[:2]
    except (OSError, ValueError):
        return False
    return version == _numba_version() and (Path(folder) / f"{name}.py").exists() and any(
        (Path(folder) / "__pycache__").glob(f"{name}*.nbi"))


def threads() -> int:
    """Threads the kernel runs on: ``$NUMBA_NUM_THREADS``, else the cores this process may use."""
    text = os.environ.get("NUMBA_NUM_THREADS")
    if text and text.isdigit() and int(text) > 0:
        return int(text)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_kernel(kernel: Kernel, compiled: CompiledModel, values: dict, initial: dict, forced: dict, runs: int,
               times, save, consts: dict, results: dict, slots: dict | None = None) -> np.ndarray:
    """Pack the engine's inputs (as :func:`.batch.integrate` holds them) into arrays and run the kernel.

    ``slots`` maps places of the run's buffer (``v_<identifier>`` of any variable,
    internal ones included, or a state's name; :attr:`Kernel.layout`) to arrays
    that receive them: ``(runs, saved times, cells)`` at every saved step, or
    ``(runs, cells)`` once, after the initial values. Returns, per run, whether
    its stocks ended finite.
    """
    nodes = compiled.nodes
    size = kernel.buffer_size
    C = np.array([float(consts[k]) for k in CONTROL])
    count = max(len(kernel.constants), 1)
    PG = np.zeros(count, dtype=np.int64)
    PO = np.zeros(count, dtype=np.int64)
    shared, per_run, series = [], [], []
    shared_size = run_size = 0
    for j, ident in enumerate(kernel.constants):
        if ident not in values:
            continue
        n = int(np.prod(nodes[ident].shape, dtype=int))
        if isinstance(values[ident], tuple):
            PG[j], PO[j] = 3, len(series)
            series.append((ident, n))
            continue
        value = np.asarray(values[ident], dtype=float)
        value = value.reshape(value.shape[0], n)
        if value.shape[0] == 1:
            PG[j], PO[j] = 1, shared_size
            shared.append(value[0])
            shared_size += n
        else:
            PG[j], PO[j] = 2, run_size
            per_run.append(value)
            run_size += n
    PV1 = np.concatenate(shared) if shared else np.zeros(1)
    PVR = np.ascontiguousarray(np.concatenate(per_run, axis=1)) if per_run else np.zeros((1, 1))
    longest = max([len(values[i][0]) for i, _ in series] + [1])
    widest = max([n for _, n in series] + [1])
    SK = np.zeros((max(len(series), 1), longest))
    SN = np.ones(max(len(series), 1), dtype=np.int64)
    SV = np.zeros((runs if series else 1, max(len(series), 1), widest, longest))
    for j, (ident, n) in enumerate(series):
        knots, frames = values[ident]
        SK[j, :len(knots)] = knots
        SK[j, len(knots):] = knots[-1]
        SN[j] = len(knots)
        SV[:, j, :n, :len(knots)] = np.asarray(frames, dtype=float).reshape(frames.shape[0], n, len(knots))
    stocks = kernel.stocks
    largest = max([int(np.prod(nodes[s].shape, dtype=int)) for s in stocks] + [1])
    IG = np.zeros(max(len(stocks), 1), dtype=np.bool_)
    IM = np.zeros((max(len(stocks), 1), largest), dtype=np.bool_)
    IV = np.zeros((runs if initial else 1, max(len(stocks), 1), largest))
    for ident, (given, mask) in initial.items():
        j = stocks.index(ident)
        n = int(np.prod(nodes[ident].shape, dtype=int))
        IG[j] = True
        IM[j, :n] = np.asarray(mask).reshape(-1)
        given = np.asarray(given, dtype=float)
        IV[:, j, :n] = np.broadcast_to(given.reshape(given.shape[0], n), (IV.shape[0], n))
    FG = np.zeros(max(len(kernel.forcible), 1), dtype=np.bool_)
    FS = np.full(FG.shape, -np.inf)
    held_rows = max([np.asarray(entry[0]).shape[0] for entry in (forced or {}).values()] + [1])
    FV = np.zeros((held_rows, size))
    FM = np.zeros(size, dtype=np.bool_)
    for ident, entry in (forced or {}).items():
        given, mask = entry[0], entry[1]
        offset, shape = kernel.layout[f"v_{ident}"]
        n = int(np.prod(shape, dtype=int))
        j = kernel.forcible.index(ident)
        FG[j] = True
        if len(entry) > 2:  # held from that time on (force_from=); before it, the equation
            FS[j] = float(entry[2])
        given = np.asarray(given, dtype=float)
        FV[:, offset:offset + n] = np.broadcast_to(given.reshape(given.shape[0], n), (held_rows, n))
        FM[offset:offset + n] = np.asarray(mask).reshape(-1)
    OD = np.full(max(len(kernel.forcible), 1), -1, dtype=np.int64)
    OCT = np.full(max(len(kernel.constants), 1), -1, dtype=np.int64)
    OC = np.full(max(len(kernel.constants), 1), -1, dtype=np.int64)
    places, out_size, outc_size = {}, 0, 0
    for ident, array in results.items():
        n = int(np.prod(nodes[ident].shape, dtype=int))
        over_time = array.ndim == 2 + len(nodes[ident].shape)
        if ident in kernel.forcible:
            OD[kernel.forcible.index(ident)] = out_size
        elif ident in kernel.constants:
            (OCT if over_time else OC)[kernel.constants.index(ident)] = out_size if over_time else outc_size
        else:
            raise ModelError(f"'{nodes[ident].name}' is not saved by the compiled kernel")
        places[ident] = (over_time, out_size if over_time else outc_size, n)
        if over_time:
            out_size += n
        else:
            outc_size += n
    slot_places = {}

    def copy_tables(names):
        """Where each slot goes in its output row, where it is in the buffer, its cells; and the row's size."""
        where, starts, counts, used = [], [], [], 0
        for name in names:
            if name not in kernel.layout:
                raise ModelError(f"'{name}' is not a place of the compiled kernel's buffer")
            at, shape = kernel.layout[name]
            n = int(np.prod(shape, dtype=int))
            where.append(used)
            starts.append(at)
            counts.append(n)
            slot_places[name] = (used, n)
            used += n
        return tuple(np.asarray(t, dtype=np.int64) for t in (where, starts, counts)), max(used, 1)

    slots = slots or {}
    (XW, XA, XN), x_size = copy_tables([name for name, array in slots.items() if array.ndim == 3])
    (KW, KA, KN), k_size = copy_tables([name for name, array in slots.items() if array.ndim != 3])
    OUTX = np.empty((runs if len(XW) else 1, int(np.sum(save)) if len(XW) else 1, x_size))
    OUTK = np.empty((runs if len(KW) else 1, k_size))
    OUT = np.empty((runs, int(np.sum(save)), max(out_size, 1)))
    OUTC = np.empty((runs, max(outc_size, 1)))
    FIN = np.ones(runs, dtype=np.bool_)
    arguments = (np.asarray(times, dtype=float), np.asarray(save, dtype=np.bool_), C, PG, PO, PV1, PVR, SK, SN,
                 SV, FG, FS, FV, FM, IG, IM, IV, OD, OCT, OC, OUT, OUTC, FIN, XW, XA, XN, OUTX, KW, KA, KN, OUTK)
    count = min(threads(), runs)
    if count <= 1:
        kernel.simulate(0, runs, *arguments)
    else:
        from concurrent.futures import ThreadPoolExecutor

        bounds = np.linspace(0, runs, count + 1).astype(int)
        with ThreadPoolExecutor(count) as pool:
            for done in [pool.submit(kernel.simulate, int(lo), int(hi), *arguments)
                         for lo, hi in zip(bounds[:-1], bounds[1:])]:
                done.result()
    for ident, array in results.items():
        over_time, o, n = places[ident]
        array[...] = (OUT[:, :, o:o + n] if over_time else OUTC[:, o:o + n]).reshape(array.shape)
    for name, array in slots.items():
        o, n = slot_places[name]
        array[...] = (OUTX[:, :, o:o + n] if array.ndim == 3 else OUTK[:, o:o + n]).reshape(array.shape)
    return FIN


__all__ = ["CompiledUnsupported", "Kernel", "generate_kernel", "load_kernel", "run_kernel"]

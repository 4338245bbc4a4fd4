"""The .mdl as a modeller wrote it: where each definition sits, and the mistakes pysd would report in Python.

pysd reads a .mdl with its newlines removed, so its errors carry no line, name
variables by Python identifier (``residence_tme``) and, for a definition not
closed by ``|``, drop the rest of the file without a word. This module reads
the text itself, keeping lines, and checks pysd's abstract model against it
before pysd builds Python from it:

- every definition is closed by ``|`` (else it names the line where the
  definition started and the line where it ran on into the next);
- pysd's parser reads every equation (else it names the one it stopped in);
- every name an equation uses is defined (else close matches are offered);
- every subscript element in a definition or a reference belongs to a range,
  and a reference gives as many subscripts as the variable has;
- the x values of every lookup increase (pysd sorts the points silently).

Simultaneous equations are found where the engine orders the equations
(:mod:`migsd.engine.codegen`), which reports them as :class:`Problem` too.

Problems are :class:`Problem` records; :func:`check_source` lists them all and
:func:`raise_problems` turns them into one :class:`SourceError` (a
:class:`~migsd.errors.ModelError`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .names import canonical, did_you_mean

# Vensim writes three backslashes; some files have two, and pysd reads what follows as sketch either way
_SKETCH = re.compile(r"^\\+---///", re.M)

_NAME = re.compile(r'^\s*("[^"]*"|[^\[\]=(:~|"]+?)\s*(\[[^\]]*\])?\s*(:EXCEPT:.*?)?\s*(:=|=|\(|:|<->|$)', re.S)
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NEXT_POINT = re.compile(rf"[\s,]*\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)")
_RANGE = re.compile(rf"\s*\[\s*\(\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\)\s*-\s*\(\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\)\s*\]")


@dataclass(frozen=True)
class Problem:
    """One mistake of a .mdl: the variable as written, the line (from 1) and what is wrong."""

    variable: str
    line: int
    message: str
    #: 'structure' (pysd cannot read the model as meant), 'loop' (simultaneous equations, found by the
    #: engine) or 'lookup' (pysd reads it, but not as written)
    kind: str = "structure"


@dataclass(frozen=True)
class Entry:
    """One ``... ~ ... ~ ... |`` block of the equations: a definition, a subscript range or a group header."""

    name: str
    line: int  # where the block starts
    end: int  # the line of its closing '|' (or of its last text, if not closed)
    fields: tuple[str, ...]  # the text between '~'s
    field_lines: tuple[int, ...]  # the line each field starts on
    closed: bool

    @property
    def equation(self) -> str:
        return self.fields[0]

    @property
    def is_group(self) -> bool:
        return self.fields[0].lstrip().startswith("*")


def shown(path: str | os.PathLike) -> str:
    """``path`` as a message shows it: relative to the working folder where it lies below it."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (OSError, ValueError):  # outside the working folder (or the folder is gone)
        return str(path)


def entries(text: str) -> list[Entry]:
    """The blocks of a .mdl's equations (the sketch left out), with their lines."""
    found: list[Entry] = []
    line = 1
    start = None
    fields: list[str] = []
    field_lines: list[int] = []
    current: list[str] = []
    quoted = False
    position = 0
    equations = _SKETCH.split(text.lstrip("\ufeff"), 1)[0]
    if equations.startswith("{"):  # the encoding header, e.g. {UTF-8}
        position = equations.index("}") + 1 if "}" in equations else 0
    while position < len(equations):
        char = equations[position]
        if not quoted and char == ":" and equations.startswith((":MACRO:", ":END OF MACRO:"), position):
            # a macro's frame is not a definition: skip its header (up to the closing parenthesis) or end mark
            end = equations.find(")", position) + 1 if equations.startswith(":MACRO:", position) else (
                position + len(":END OF MACRO:"))
            line += equations.count("\n", position, end)
            position = end
            continue
        if start is None and not char.isspace():
            start = line
            field_lines = [line]
        if char == '"' and len(fields) != 2:  # pysd reads a comment's quotes as text
            quoted = not quoted
        if char == "\\" and equations.startswith("\\\n", position):  # a line continuation
            current.append(" ")
            line += 1
            position += 2
            continue
        if char == "\n":
            line += 1
        if not quoted and char == "~":
            fields.append("".join(current))
            current = []
            field_lines.append(line)
        elif not quoted and char == "|":
            fields.append("".join(current))
            found.append(_entry(fields, field_lines, start or line, line, closed=True))
            fields, current, start, field_lines = [], [], None, []
        elif start is not None:
            current.append(char)
        position += 1
    if (start is not None and "".join(current).strip()) or fields:
        fields.append("".join(current))
        last = start + "".join(fields).rstrip().count("\n") if start is not None else line
        found.append(_entry(fields, field_lines, start or line, last, closed=False))
    return found


def _entry(fields: list[str], field_lines: list[int], start: int, end: int, closed: bool) -> Entry:
    match = _NAME.match(fields[0]) if fields else None
    name = match.group(1).strip() if match else fields[0].strip()[:40]
    return Entry(" ".join(name.split()), start, end, tuple(fields), tuple(field_lines), closed)


def definition_lines(text: str) -> dict[str, list[int]]:
    """Lines where each variable (and subscript range) is defined, by canonical name, in .mdl order.

    A variable defined element by element has one line per definition, in the
    order pysd keeps its components.
    """
    lines: dict[str, list[int]] = {}
    for entry in entries(text):
        if not entry.is_group:
            lines.setdefault(canonical(entry.name.strip('"')), []).append(entry.line)
    return lines


def _ran_on(entry: Entry) -> tuple[str, int]:
    """What an unclosed block ran on into ("'name'" or "the group 'name'") and its line.

    The next block starts inside the comment of this one: the third field of a
    definition, the second of a group header; Vensim indents comments, so the
    first line there that starts in the first column is where it begins.
    """
    index = 1 if entry.is_group else 2
    field, first = entry.fields[index], entry.field_lines[index]
    lines = field.split("\n")
    candidates = [(i, text) for i, text in enumerate(lines) if i and text.strip() and not text[:1].isspace()]
    candidates += [(i, text) for i, text in enumerate(lines) if i and _NAME.match(text) and _NAME.match(text).group(4)]
    for offset, text in candidates:
        if text.lstrip().startswith("*"):
            title = next((t.strip() for t in lines[offset + 1:] if t.strip() and not t.strip().startswith("*")), "")
            return f"the group '{title}'", first + offset
        match = _NAME.match(text)
        return "'" + " ".join((match.group(1) if match else text).split()) + "'", first + offset
    return "the next definition", entry.field_lines[-1]


def structure_problems(text: str) -> list[Problem]:
    """Definitions not closed by ``|``: pysd reads nothing after the first of them."""
    problems = []
    for entry in entries(text):
        what = f"the group '{entry.name.strip('*').strip()}'" if entry.is_group else f"the definition of '{entry.name}'"
        fields_expected = 2 if entry.is_group else 4
        if not entry.closed:
            problems.append(Problem(entry.name, entry.line,
                                    f"{what} is not closed by '|' (its text ends at line {entry.end}, "
                                    "where the sketch or the file begins); end it with '|'"))
        elif len(entry.fields) > fields_expected or (len(entry.fields) > 2 and any(
                line.lstrip().startswith("***") for field in entry.fields[1:] for line in field.split("\n"))):
            into, line = _ran_on(entry)
            problems.append(Problem(entry.name, entry.line,
                                    f"{what} is not closed by '|': it runs on into {into} at line {line}; "
                                    f"end it with '|' before line {line}"))
        elif len(entry.fields) < 3 and not entry.is_group:
            problems.append(Problem(entry.name, entry.line,
                                    f"{what} has no '~ units ~ comment' before its '|' (line {entry.end}); "
                                    "pysd reads nothing after it"))
    return problems


def lookup_problems(text: str) -> list[Problem]:
    """Lookups whose x values do not increase (pysd would sort the points, silently redrawing the curve)."""
    problems = []
    for entry in entries(text):
        if entry.is_group:
            continue
        equation = entry.equation
        tables = []
        match = _NAME.match(equation)
        if match and match.group(4) == "(":
            tables.append(match.end())
        for call in re.finditer(r"WITH\s+LOOKUP\s*\(", equation, re.I):
            table = re.compile(r",\s*\((?=\s*[\[(])").search(equation, call.end())
            if table:
                tables.append(table.end())
        for begin in tables:
            limits = _RANGE.match(equation, begin) or re.compile(r"\s*").match(equation, begin)
            position, points = limits.end(), []
            while point := _NEXT_POINT.match(equation, position):
                points.append((float(point.group(1)), point.group(0).strip(" \t\n,"), point.start(1)))
                position = point.end()
            for (x0, p0, _), (x1, p1, at) in zip(points, points[1:]):
                if x1 <= x0:
                    xs = ", ".join(f"{x:g}" for x, _, _ in points)
                    problems.append(Problem(
                        entry.name, entry.line + equation.count("\n", 0, at),
                        f"the x values of the lookup '{entry.name}' do not increase: {p0} is followed by {p1} "
                        f"(x: {xs}); pysd would sort the points and draw another curve", kind="lookup"))
                    break
    return problems


def _walk(node):
    """Every abstract-syntax node below ``node`` (pysd's dataclasses, tuples and lists), depth first."""
    from dataclasses import fields, is_dataclass

    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _walk(item)
    elif is_dataclass(node) and not isinstance(node, type):
        yield node
        for f in fields(node):
            yield from _walk(getattr(node, f.name))


def _as_written(reference: str, equation: str) -> tuple[str, int]:
    """The spelling in ``equation`` of a name pysd keeps as ``lower_case_with_underscores``, and where it is."""
    words = [re.escape(w) for w in reference.split("_") if w]
    if words:
        found = re.search(r"(?<![\w])" + r"[\s_]+".join(words) + r"(?![\w])", equation, re.I)
        if found:
            return " ".join(found.group(0).split()), found.start()
    return reference.replace("_", " "), 0


def _token_at(token: str, equation: str) -> int:
    """Where the subscript ``token`` first appears between brackets in ``equation`` (0 if not found)."""
    found = re.search(r"[\[,]\s*" + re.escape(token) + r"\s*[\],]", equation)
    return found.start() if found else 0


class _Names:
    """What the names of a parsed section refer to, as pysd's builder resolves them."""

    def __init__(self, section, root: Path):
        import warnings

        from pysd.builders.python.namespace import NamespaceManager
        from pysd.builders.python.python_functions import functionspace
        from pysd.builders.python.subscripts import SubscriptManager

        namespace = NamespaceManager()
        for element in section.elements:
            namespace.add_to_namespace(element.name)
        by_ident = {namespace.namespace[e.name]: e for e in section.elements}
        self.elements = {clean: by_ident[ident] for clean, ident in namespace.cleanspace.items() if ident in by_ident}
        self.functions = set(functionspace) | {"a_function_of"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # pysd resolves ranges copied from others and ranges read from files
            self.ranges = {name: list(elements) for name, elements in
                           SubscriptManager(section.subscripts, root).subscripts.items()}
        self.subscript_values = {r.replace(" ", "_").lower() for r in self.ranges}
        self.all_elements = [e for elements in self.ranges.values() for e in elements]
        self.subscript_values |= {e.replace(" ", "_").lower() for e in self.all_elements}
        self.macros: set[str] = set()

    def known_token(self, token: str) -> bool:
        base = token[:-1] if token.endswith("!") else token
        return base in self.ranges or base in self.all_elements

    def range_of(self, element, position: int) -> str | None:
        """The range of ``element``'s subscript at ``position``: the one its definitions use there."""
        for component in element.components:
            tokens = component.subscripts[0]
            if position >= len(tokens):
                return None
            if tokens[position] in self.ranges:
                main = tokens[position]
                # a subrange in a definition stands for the range that holds it
                for name, members in self.ranges.items():
                    if set(self.ranges[main]) < set(members):
                        main = name
                return main
        tokens = [c.subscripts[0][position] for c in element.components if position < len(c.subscripts[0])]
        holding = [name for name, members in self.ranges.items() if all(t in members for t in tokens)]
        return max(holding, key=lambda n: len(self.ranges[n])) if holding else None


def abstract_problems(abstract, text: str, root: Path = Path(".")) -> list[Problem]:
    """Undefined names and subscript elements outside their range, in pysd's abstract model of ``text``."""
    lines = definition_lines(text)
    blocks = {}
    for entry in entries(text):
        if not entry.is_group:
            blocks.setdefault(canonical(entry.name.strip('"')), []).append(entry)
    problems: list[Problem] = []
    section = abstract.sections[0]
    names = _Names(section, root)
    names.macros = {s.name.lower().replace(" ", "_") for s in abstract.sections[1:]}
    variable_names = [e.name for e in section.elements]
    seen = set()

    def add(element, index: int, message: str, offset: int = 0) -> None:
        key = canonical(element.name)
        at = lines.get(key, [0])
        line = at[index] if index < len(at) else at[0]
        if key in blocks and index < len(blocks[key]):
            line += blocks[key][index].equation.count("\n", 0, offset)
        if (line, message) not in seen:
            seen.add((line, message))
            problems.append(Problem(element.name, line, message))

    for element in section.elements:
        key = canonical(element.name)
        for index, component in enumerate(element.components):
            equation = blocks[key][index].equation if key in blocks and index < len(blocks[key]) else ""
            for tokens in [component.subscripts[0], *component.subscripts[1]]:
                for token in tokens:
                    if not names.known_token(token):
                        add(element, index, f"'{token}' is not a subscript element or range (in the definition "
                                            f"of '{element.name}')."
                                            + did_you_mean(token, [*names.ranges, *names.all_elements]),
                            _token_at(token, equation))
            called = set()
            for node in _walk(getattr(component, "ast", None)):
                kind = type(node).__name__
                if kind == "CallStructure":
                    called.add(id(node.function))
                    function = node.function.reference
                    if not (function in names.elements or function in names.functions or function in names.macros):
                        written, offset = _as_written(function, equation)
                        add(element, index, f"'{written}' is neither a function pysd knows nor a lookup of the "
                                            f"model (in the equation of '{element.name}')."
                                            + did_you_mean(written, variable_names), offset)
                    continue
                if kind != "ReferenceStructure" or id(node) in called:
                    continue
                reference = node.reference
                if reference == "time":
                    continue
                target = names.elements.get(reference)
                if target is None:
                    if reference in names.subscript_values or reference in names.functions:
                        continue
                    written, offset = _as_written(reference, equation)
                    add(element, index, f"'{written}' is not defined (in the equation of '{element.name}')."
                                        + did_you_mean(written, variable_names), offset)
                    continue
                tokens = list(node.subscripts.subscripts) if node.subscripts is not None else []
                dims = len(target.components[0].subscripts[0]) if target.components else 0
                if len(tokens) != dims:  # Vensim refuses it; pysd fails at run time, or broadcasts
                    written, offset = _as_written(reference, equation)
                    ranges = [names.range_of(target, i) or "?" for i in range(dims)]
                    has = f"is subscripted by [{', '.join(ranges)}]" if dims else "has no subscripts"
                    given = f"[{', '.join(tokens)}]" if tokens else "no subscripts"
                    add(element, index, f"'{target.name}' {has}; the equation of '{element.name}' refers to it "
                                        f"with {given}", offset)
                    continue
                for position, token in enumerate(tokens):
                    base = token[:-1] if token.endswith("!") else token
                    if base in names.ranges:
                        continue
                    where = names.range_of(target, position)
                    members = names.ranges.get(where, []) if where else []
                    if base in members:
                        continue
                    if where is None and names.known_token(token):
                        continue
                    context = f"(in a reference to '{target.name}' in the equation of '{element.name}')"
                    offset = _token_at(token, equation)
                    if where is None:
                        add(element, index, f"'{token}' is not a subscript element or range {context}."
                                            + did_you_mean(token, [*names.ranges, *names.all_elements]), offset)
                    else:
                        add(element, index, f"'{token}' is not an element of {where} {context}; "
                                            f"{where} has {', '.join(members)}."
                                            + did_you_mean(token, members), offset)
    return sorted(problems, key=lambda p: p.line)


def check_source(path: str | os.PathLike, abstract=None) -> list[Problem]:
    """Every mistake of the .mdl at ``path`` this module finds (structure first, then names, then lookups).

    ``abstract`` is pysd's abstract model of the same file, parsed here if not given.
    Names are not checked in a model whose structure is broken: pysd has not read
    the part after the break, so every name defined there would look undefined.
    """
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    found = structure_problems(text)
    if found:
        return found
    if abstract is None:
        abstract = parse_abstract(Path(path))
    return abstract_problems(abstract, text, Path(path).parent) + lookup_problems(text)


def parse_abstract(path: Path):
    """pysd's abstract model of a .mdl (its parser's notices silenced; they concern its own code generation)."""
    import warnings

    from pysd.translators.vensim.vensim_file import VensimFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vensim_file = VensimFile(str(path))
        vensim_file.parse()
        return vensim_file.get_abstract_model()


def unreadable(text: str, error: Exception) -> list[Problem]:
    """The definition pysd's parser stopped in, from its ``ParseError`` (empty if it cannot be told)."""
    fragment = getattr(error, "text", None)
    position = getattr(error, "pos", None)
    if not isinstance(fragment, str) or not isinstance(position, int) or not fragment.strip():
        return []
    blocks = [(entry, " ".join(entry.equation.split())) for entry in entries(text) if not entry.is_group]
    wanted = fragment.strip()
    # pysd parses a definition whole, then its right-hand side: the fragment ends the equation it came from
    found = [e for e, cleaned in blocks if cleaned.endswith(wanted)] or [e for e, cleaned in blocks if wanted in cleaned]
    if not found:
        return []
    start = max(0, position - 50)
    excerpt = ("..." if start else "") + fragment[start:position + 30].strip()
    return [Problem(found[0].name, found[0].line, f"pysd cannot read the equation of '{found[0].name}': its parser "
                                                  f"stops at character {position + 1} of {excerpt!r} "
                                                  "(unbalanced brackets, or an operator missing?)")]


def describe(path: str | os.PathLike, problems: list[Problem]) -> str:
    """The problems, one per line, each as ``file:line: what is wrong``."""
    where = shown(path)
    return "\n".join(f"{where}:{p.line}: {p.message}" for p in problems)


class SourceError(ModelError):
    """Mistakes of a .mdl's text, each a :class:`Problem` with its line; the message lists them all."""

    def __init__(self, path: str | os.PathLike, problems: list[Problem]):
        self.path = Path(path)
        self.problems = list(problems)
        super().__init__(describe(path, problems))


def raise_problems(path: str | os.PathLike, problems: list[Problem]) -> None:
    """Raise one :class:`SourceError` listing ``problems`` (nothing if there are none)."""
    if problems:
        raise SourceError(path, problems)


__all__ = ["Entry", "Problem", "abstract_problems", "check_source", "definition_lines", "describe",
           "entries", "lookup_problems", "parse_abstract", "raise_problems", "shown", "unreadable",
           "SourceError", "structure_problems"]

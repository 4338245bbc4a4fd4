"""The .mdl's views (Vensim sketch): which sector each variable belongs to.

Equations sit in Vensim groups (``.Population`` markers); the sketch has one view
per sector. :func:`read_views` gives each variable's view, which outputs report
as its ``sector``; :func:`place_missing` adds every variable that no view shows
to the view named after its group, leaving existing layout untouched, so that a
modeller who adds an equation in a text editor can run ``migsd sketch``.
"""

from __future__ import annotations

import re
from collections import defaultdict

SKETCH_MARK = "\\\\\\---/// Sketch information - do not modify anything except names"
SKETCH_END = "///---\\\\\\"
VIEW_HEADER = "V300  Do not put anything below this section - it will be ignored"
VIEW_STYLE = "$192-192-192,0,Times New Roman|12||0-0-0|0-0-0|0-0-255|-1--1--1|-1--1--1|96,96,100,0"

_GROUP = re.compile(r"^\*{10,}\s*\n\s*\.(?P<name>[^\n]+?)\s*\n\*{10,}", re.MULTILINE)
_NAME = re.compile(r"^(?P<name>[A-Za-z][^\[=(:~|\n]*?)\s*(\[[^\]]*\])?\s*(=|\(|:=)", re.MULTILINE)
_CONTROL = {"INITIAL TIME", "FINAL TIME", "TIME STEP", "SAVEPER"}


def split_mdl(text: str) -> tuple[str, str]:
    """The equations section and the sketch section (empty if the file has none)."""
    position = text.find(SKETCH_MARK)
    if position < 0:
        return text, ""
    return text[:position], text[position:]


def equation_groups(text: str) -> dict[str, str]:
    """Each variable defined in the equations section, with its Vensim group."""
    equations, _ = split_mdl(text)
    groups: dict[str, str] = {}
    marks = [(m.start(), m.group("name")) for m in _GROUP.finditer(equations)]
    for entry_start, entry in _entries(equations):
        match = _NAME.match(entry.lstrip())
        if not match or entry.lstrip().startswith(("*", "{")):
            continue
        name = " ".join(match.group("name").split())
        group = ""
        for mark_start, mark_name in marks:
            if mark_start <= entry_start:
                group = mark_name
        groups.setdefault(name, group)
    return groups


def read_views(text: str) -> dict[str, str]:
    """Each variable shown in the sketch (not as a shadow), with its view's name."""
    _, sketch = split_mdl(text)
    views: dict[str, str] = {}
    view = ""
    for line in sketch.splitlines():
        if line.startswith("*"):
            view = line[1:].strip()
        elif line.startswith("10,"):
            fields = line.split(",")
            if len(fields) > 2:
                name = " ".join(_unquote(fields[2]).split())
                views.setdefault(name, view)
    return views


def place_missing(text: str) -> tuple[str, list[str]]:
    """Add every variable the sketch lacks to the view of its group.

    Returns the new text and the names placed. Views are created as needed;
    control variables (INITIAL TIME ...) and subscript ranges are never placed.
    """
    equations, sketch = split_mdl(text)
    placed = {name.lower() for name in read_views(text)}
    missing: dict[str, list[str]] = defaultdict(list)
    for name, group in equation_groups(text).items():
        if name.lower() in placed or name in _CONTROL or not group or group == "Control":
            continue
        missing[group].append(name)
    if not missing:
        return text, []
    views = _parse_sketch(sketch)
    next_id = 1 + max((int(f.split(",")[1]) for lines in views.values() for f in lines
                       if f[:3] in ("10,", "11,", "12,") and f.split(",")[1].isdigit()), default=0)
    for group, names in missing.items():
        lines = views.setdefault(group, [])
        start = sum(1 for line in lines if line.startswith("10,"))
        for offset, name in enumerate(names):
            column, row = divmod(start + offset, 18)
            x, y = 150 + 260 * column, 60 + 45 * row
            shape = 3 if _is_stock(equations, name) else 8
            lines.append(f"10,{next_id},{name},{x},{y},60,18,{shape},3,0,0,0,0,0,0")
            next_id += 1
    return equations.rstrip("\n") + "\n\n" + _format_sketch(views), [n for v in missing.values() for n in v]


def _entries(equations: str):
    position = 0
    for chunk in equations.split("|"):
        yield position, chunk
        position += len(chunk) + 1


def _is_stock(equations: str, name: str) -> bool:
    pattern = re.compile(rf"^{re.escape(name)}\s*(\[[^\]]*\])?\s*=\s*INTEG", re.MULTILINE)
    return bool(pattern.search(equations))


def _unquote(field: str) -> str:
    return field[1:-1] if field.startswith('"') and field.endswith('"') else field


def _parse_sketch(sketch: str) -> dict[str, list[str]]:
    views: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in sketch.splitlines():
        if line.startswith("*"):
            current = views.setdefault(line[1:].strip(), [])
        elif line.startswith(SKETCH_END):
            current = None
        elif current is not None and not line.startswith(("$", "V300", "\\\\\\")):
            current.append(line)
    return views


def _format_sketch(views: dict[str, list[str]]) -> str:
    parts = []
    for view, lines in views.items():
        parts.append("\n".join([SKETCH_MARK, VIEW_HEADER, f"*{view}", VIEW_STYLE, *lines]))
    return "\n".join(parts) + "\n" + SKETCH_END + "\n"

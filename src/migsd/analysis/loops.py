"""Loops that matter: which feedback loops drive a model's behaviour, when, over a whole ensemble.

The loops are found once from the model's element-level graph (every link that the
engine's link scores can measure): all simple cycles while there are at most
``max_loops``; past that, a strongest-path search on the link scores of a few pilot
runs (in the spirit of Eberlein & Schoenberg's strongest-path method and simlin's
loop discovery) keeps the loops that carry behaviour, and the result says so
(``loop_search`` attribute). Every run of an ensemble shares that one set of loops.

A loop's score is the product of its links' scores; its relative score divides it
by the sum of the absolute scores of the loops in its partition (the loops among
one group of stocks linked by feedback), so absolute relative scores sum to 1 in
each partition at each time. Names come from ``models/loops.toml`` (by the
variables a loop passes through).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import AnalysisError
from ..names import canonical, did_you_mean
from ..paths import MODELS_DIR

#: Loops enumerated exhaustively up to this many; past it the strongest-path search takes over.
MAX_LOOPS = 400
LOOPS_FILE = MODELS_DIR / "loops.toml"
#: Dominance shifts are counted from the year the yield is measured against (the model leaves 1990 quickly).
SHIFTS_AFTER = 2020.0


@dataclass
class Loop:
    """One element-level feedback loop: its nodes in order (each (unit, element)), its links' columns."""

    nodes: tuple
    columns: tuple[int, ...]
    partition: int = 0
    name: str = ""
    ident: str = ""
    text: str = ""
    family: str = ""  # the loops-file name without elements; empty when unnamed


@dataclass
class LoopSet:
    """The loops of a model for one set of inputs, shared by every run."""

    structure: object
    loops: list[Loop]
    search: str  # 'exhaustive' or a sentence on the strongest-path search
    labels: dict  # (unit, element) -> text

    @property
    def columns(self) -> list[int]:
        return sorted({c for loop in self.loops for c in loop.columns})


def element_label(unit, cell: int, subscripts: dict[str, list[str]], dims_of) -> str:
    if not unit.shape:
        return unit.label
    index = np.unravel_index(cell, unit.shape)
    names = [subscripts[d][i] for d, i in zip(dims_of(unit), index)]
    return f"{unit.label}[{','.join(names)}]"


def graph(structure, labels: dict):
    """The element-level graph: an edge per link, its column in the link scores as ``column``."""
    import networkx as nx

    g = nx.DiGraph()
    for column, (source, target) in enumerate(structure.edges()):
        g.add_edge(source, target, column=column)
    return g


def _canonical_cycle(cycle: list) -> tuple:
    start = min(range(len(cycle)), key=lambda k: cycle[k])
    return tuple(cycle[start:] + cycle[:start])


def find_loops(structure, labels: dict, *, max_loops: int = MAX_LOOPS, pilot=None) -> LoopSet:
    """Every simple cycle up to ``max_loops``; past it, the strongest paths at the pilot's link scores.

    ``pilot`` is a callable returning absolute link scores shaped (times, links) of a
    few runs, called only when the enumeration exceeds the budget.
    """
    import networkx as nx

    g = graph(structure, labels)
    cycles, search = [], "exhaustive"
    for count, cycle in enumerate(nx.simple_cycles(g)):
        if count >= max_loops:
            cycles = None
            break
        cycles.append(_canonical_cycle(list(cycle)))
    if cycles is None:
        if pilot is None:
            raise AnalysisError(f"the model has more than {max_loops} feedback loops; give a larger max_loops "
                                "or let the strongest-path search run (a pilot)")
        scores = pilot()
        cycles = _strongest_cycles(g, scores, structure)
        search = (f"more than {max_loops} loops: strongest-path search at {scores.shape[0]} times of the pilot runs "
                  f"kept {len(cycles)} loops; relative scores are shares among these loops")
    components = [c for c in nx.strongly_connected_components(g) if len(c) > 1 or any(g.has_edge(n, n) for n in c)]
    partition_of = {n: k for k, c in enumerate(sorted(components, key=lambda c: min(c))) for n in c}
    loops = []
    for cycle in sorted(set(cycles), key=lambda c: (len(c), c)):
        stocks = [k for k, n in enumerate(cycle) if structure.units[n[0]].stock]
        if stocks:  # read from a stock, as modellers trace a loop
            first = min(stocks, key=lambda k: cycle[k])
            cycle = cycle[first:] + cycle[:first]
        columns = tuple(g.edges[cycle[k], cycle[(k + 1) % len(cycle)]]["column"] for k in range(len(cycle)))
        text = " -> ".join(labels[n] for n in cycle + (cycle[0],))
        ident = "L" + hashlib.sha1(text.encode()).hexdigest()[:8]
        loops.append(Loop(cycle, columns, partition_of[cycle[0]], ident=ident, text=text))
    return LoopSet(structure, loops, search, labels)


def _strongest_cycles(g, scores: np.ndarray, structure) -> list[tuple]:
    """For each stock element and time, the strongest loop through each of its outgoing links.

    The strongest path back to a stock maximises the product of absolute link scores,
    a shortest path under weights ``-log(|score| / largest score)`` (Dijkstra, scipy's).
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    nodes = sorted(g.nodes)
    position = {n: k for k, n in enumerate(nodes)}
    edges = list(g.edges(data="column"))
    sources = np.asarray([position[u] for u, _, _ in edges])
    targets = np.asarray([position[v] for _, v, _ in edges])
    columns = np.asarray([c for _, _, c in edges])
    stocks = [position[n] for n in nodes if structure.units[n[0]].stock]
    found = set()
    for row in scores:
        value = row[columns]
        alive = np.isfinite(value) & (value > 0)
        if not alive.any():
            continue
        top = value[alive].max()
        weight = -np.log(np.minimum(value[alive] / top, 1.0)) + 1e-9
        # reversed graph: distances from every node to each stock
        reverse = csr_matrix((weight, (targets[alive], sources[alive])), shape=(len(nodes), len(nodes)))
        _, before = dijkstra(reverse, directed=True, indices=stocks, return_predecessors=True)
        out = {}
        for u, v in zip(sources[alive], targets[alive]):
            out.setdefault(u, []).append(v)
        for k, stock in enumerate(stocks):
            for successor in out.get(stock, []):
                if successor == stock:
                    found.add((nodes[stock],))
                    continue
                path, node = [], successor
                while node != stock and node >= 0:
                    path.append(node)
                    node = before[k, node]
                if node != stock or len(set(path)) != len(path):
                    continue
                found.add(_canonical_cycle([nodes[stock]] + [nodes[p] for p in path]))
    return sorted(found)


# ------------------------------------------------------------------ names


def read_names(path: Path | None, model) -> list[tuple[str, list[str], bool]]:
    """(name, variables it passes through, only those) from a loops file; unknown variables are refused."""
    from ..errors import ScenarioError
    from ..tomlfiles import check_table, read_toml

    if path is None:
        return []
    path = Path(path)
    try:
        document = read_toml(path, "loops file")
    except ScenarioError as error:
        raise AnalysisError(str(error)) from error
    if document.get("model") not in (None, model.path.name):
        return []
    entries = document.get("loop", [])
    if not isinstance(entries, list):
        raise AnalysisError(f"{path}: 'loop' must be an array of tables ([[loop]])")
    known = {canonical(v.name): v.name for v in model.variables.values()}
    out = []
    for number, entry in enumerate(entries, start=1):
        where = f"{path.name}: loop {number}"
        try:
            check_table(entry, where, ("name", "through", "only"), ("name", "through"))
        except ScenarioError as error:
            raise AnalysisError(str(error)) from error
        through = entry["through"]
        if not isinstance(through, list) or not through:
            raise AnalysisError(f"{where}: 'through' must be a non-empty list of .mdl names")
        names = []
        for name in through:
            if canonical(str(name)) not in known:
                raise AnalysisError(f"{path}: loop '{entry['name']}': 'through' names '{name}', which is not a "
                                    f"variable of {model.path.name}." + did_you_mean(str(name), known.values()))
            names.append(known[canonical(str(name))])
        only = entry.get("only", False)
        if not isinstance(only, bool):
            raise AnalysisError(f"{where}: 'only' must be true or false, got {only!r}")
        out.append((str(entry["name"]), names, only))
    return out


def name_loops(loop_set: LoopSet, named: list) -> None:
    """Give each loop the first name whose variables it passes through (with its elements), else its id."""
    units = loop_set.structure.units
    taken: dict[str, int] = {}
    for loop in loop_set.loops:
        variables = {units[u].label.split(" (stage")[0] for u, _ in loop.nodes}
        name = ""
        for label, through, only in named:
            if set(through) <= variables and (not only or set(through) == variables):
                first = next(n for n in loop.nodes if units[n[0]].label == through[0])
                text = loop_set.labels[first]
                elements = text[len(units[first[0]].label):]
                name = f"{label}{elements}" if elements else label
                loop.family = label
                break
        if not name:
            name = f"{loop.ident}: " + " -> ".join(loop_set.labels[n] for n in loop.nodes[:3]) + \
                (" -> ..." if len(loop.nodes) > 3 else "")
        taken[name] = taken.get(name, 0) + 1
        loop.name = name if taken[name] == 1 else f"{name} #{taken[name]}"


# ------------------------------------------------------------------ scoring


class _Reducer:
    """Receives the link scores of each scored step and keeps only what was asked for."""

    def __init__(self, loop_set: LoopSet, chosen: list[int], runs: int, steps: dict[int, int], *, quantiles,
                 keep_runs: bool, variable_loops: np.ndarray | None, link_scores: bool):
        self.loops = loop_set.loops
        from scipy.sparse import csr_matrix

        position = {c: k for k, c in enumerate(chosen)}
        # loop k multiplies the links in its columns: a sparse (links x loops) incidence, so that
        # a loop score is exp(sum of log |link score|) with the sign from the count of negative links
        rows_, cols_ = [], []
        for k, loop in enumerate(self.loops):
            rows_ += [position[c] for c in loop.columns]
            cols_ += [k] * len(loop.columns)
        self.incidence_t = csr_matrix((np.ones(len(rows_)), (cols_, rows_)), shape=(len(self.loops), len(chosen)))
        partitions = sorted({l.partition for l in self.loops})
        self.member = np.zeros((len(self.loops), len(partitions)))
        for k, loop in enumerate(self.loops):
            self.member[k, partitions.index(loop.partition)] = 1.0
        self.part_of = np.asarray([partitions.index(l.partition) for l in self.loops], dtype=int)
        self.steps = steps
        self.runs = runs
        self.start = 0
        self.quantiles = quantiles
        shape_t = len(steps)
        L = len(self.loops)
        self.keep_runs = keep_runs
        if keep_runs:
            self.score = np.full((runs, shape_t, L), np.nan)
            self.relative = np.full((runs, shape_t, L), np.nan)
        self.positive = np.zeros(L, dtype=np.int64)
        self.negative = np.zeros(L, dtype=np.int64)
        self.variable_loops = variable_loops
        self.variable_index = None if variable_loops is None else np.flatnonzero(variable_loops)
        if variable_loops is not None:
            self.dominant = np.full((runs, shape_t), -1, dtype=np.int32)
        self.link_scores = np.full((runs, shape_t, len(chosen)), np.nan) if link_scores else None
        self.chunk_parts: list = []

    def begin(self, start: int, rows: int):
        self.start, self.rows = start, rows
        if self.quantiles is not None:
            shape = (len(self.quantiles), len(self.steps), len(self.loops))
            self.chunk_parts.append((rows, np.full(shape, np.nan), np.full(shape, np.nan)))

    def __call__(self, n: int, scores: np.ndarray) -> None:
        t = self.steps.get(n)
        if t is None:
            return
        links = scores[:-1]  # links x runs
        with np.errstate(divide="ignore"):
            logs = np.log(np.abs(links))  # a zero link gives -inf: its loops score exp(-inf) = 0
        log_score = self.incidence_t @ logs
        negatives = self.incidence_t @ (links < 0).astype(float)
        with np.errstate(over="ignore", invalid="ignore"):
            loop = np.exp(log_score, out=log_score)
        odd = (negatives.astype(np.int64) & 1).astype(bool)
        np.negative(loop, out=loop, where=odd)
        magnitude = np.abs(loop)
        total = self.member.T @ magnitude  # partitions x runs
        by_loop = total[self.part_of]
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = loop / by_loop
        relative[by_loop == 0] = 0.0
        positive = loop > 0
        self.positive += positive.sum(axis=1)
        self.negative += (magnitude > 0).sum(axis=1) - positive.sum(axis=1)
        rows = slice(self.start, self.start + scores.shape[1])
        if self.keep_runs:
            self.score[rows, t] = loop.T
            self.relative[rows, t] = relative.T
        if self.quantiles is not None:
            # reduced at once: only quantiles x loops per step and chunk are kept (single precision sorts faster)
            q = np.asarray(self.quantiles, dtype=float)
            self.chunk_parts[-1][1][:, t] = np.quantile(loop.astype(np.float32), q, axis=1)
            self.chunk_parts[-1][2][:, t] = np.quantile(relative.astype(np.float32), q, axis=1)
        if self.variable_index is not None and len(self.variable_index):
            through = np.abs(relative[self.variable_index])
            best = np.argmax(through, axis=0)
            none = through[best, np.arange(len(best))] <= 0
            self.dominant[rows, t] = np.where(none, -1, self.variable_index[best])
        if self.link_scores is not None:
            self.link_scores[rows, t] = scores[:-1].T


def loop_dataset(model, loop_set: LoopSet, reducer: _Reducer, saved: np.ndarray, *, variable, runs, run_coord,
                 quantiles, chosen: list[int]) -> xr.Dataset:
    loops = loop_set.loops
    polarity = np.where(reducer.negative == 0, np.where(reducer.positive > 0, "R", "?"),
                        np.where(reducer.positive == 0, "B", "R/B"))
    coords = {
        "loop": [l.name for l in loops],
        "time": saved,
        "loop_id": ("loop", [l.ident for l in loops]),
        "loop_polarity": ("loop", polarity.astype(str)),
        "loop_variables": ("loop", [l.text for l in loops]),
        "loop_partition": ("loop", [l.partition for l in loops]),
        "loop_length": ("loop", [len(l.nodes) for l in loops]),
        "loop_family": ("loop", [l.family or l.name for l in loops]),
    }
    data = {}
    score_attrs = {"long_name": "loop score", "units": "dimensionless",
                   "description": "product of the loop's link scores (Schoenberg, Davidsen & Eberlein 2020; "
                                  "flow-to-stock links as revised by Schoenberg, Hayward & Eberlein 2023)"}
    relative_attrs = {"long_name": "relative loop score", "units": "dimensionless",
                      "description": "loop score over the sum of absolute loop scores in its partition: "
                                     "its share of the behaviour, signed (positive reinforcing, negative balancing); "
                                     "0 where no loop of the partition is active"}
    if reducer.keep_runs:
        score = np.moveaxis(reducer.score, -1, 0)  # loop, run, time
        relative = np.moveaxis(reducer.relative, -1, 0)
        dims = ("loop", "run", "time")
        if runs is None:
            score, relative, dims = score[:, 0], relative[:, 0], ("loop", "time")
        data["loop score"] = (dims, score, score_attrs)
        data["relative loop score"] = (dims, relative, relative_attrs)
    if quantiles is not None:
        # exact over one chunk of runs; over several, the chunks' quantiles weighted by their runs
        weights = np.asarray([p[0] for p in reducer.chunk_parts], dtype=float)
        weights = weights / weights.sum()
        scores = sum(w * p[1] for w, p in zip(weights, reducer.chunk_parts))
        relatives = sum(w * p[2] for w, p in zip(weights, reducer.chunk_parts))
        q = np.asarray(quantiles, dtype=float)
        score_attrs["quantiles"] = relative_attrs["quantiles"] = "over runs, taken in single precision"
        data["loop score"] = (("quantile", "time", "loop"), scores, score_attrs)
        data["relative loop score"] = (("quantile", "time", "loop"), relatives, relative_attrs)
        coords["quantile"] = q
        if len(weights) > 1:
            score_attrs["quantiles"] = relative_attrs["quantiles"] = (
                f"over {len(weights)} chunks of runs: each chunk's quantiles, weighted by its runs (approximate)")
    if reducer.link_scores is not None:
        edges = loop_set.structure.edges()
        texts = [f"{loop_set.labels[s]} -> {loop_set.labels[t]}" for s, t in (edges[c] for c in chosen)]
        values = np.moveaxis(reducer.link_scores, -1, 0)
        dims = ("link", "run", "time") if runs is not None else ("link", "time")
        data["link score"] = (dims, values if runs is not None else values[:, 0],
                              {"long_name": "link score", "units": "dimensionless",
                               "description": "|dx_z / dz| * sign(dx_z / dx) of each link on a loop"})
        coords["link"] = texts
    attrs = {"title": "loops that matter", "model": model.path.name, "loop_search": loop_set.search,
             "method": "Loops That Matter (Schoenberg, Davidsen & Eberlein 2020; Schoenberg, Hayward & Eberlein "
                       "2023), scored at the saved times from the change over the preceding TIME STEP"}
    if variable is not None and reducer.variable_loops is not None:
        through = reducer.variable_loops
        dominant = reducer.dominant
        names = np.asarray([l.name for l in loops] + [""], dtype=object)
        text = names[np.where(dominant < 0, len(loops), dominant)]
        attrs["variable"] = variable
        coords["variable_loop"] = ("loop", through)
        probability = np.stack([(dominant == k).mean(axis=0) for k in range(len(loops))])
        data["dominance probability"] = (("loop", "time"), probability,
                                         {"long_name": "dominance probability", "units": "dimensionless",
                                          "description": f"share of runs in which the loop has the largest absolute "
                                                         f"relative score among the loops through {variable}"})
        if runs is not None:
            data["dominant loop"] = (("run", "time"), text.astype(str),
                                     {"long_name": "dominant loop", "description":
                                      f"loop with the largest absolute relative score through {variable}"})
        else:
            data["dominant loop"] = (("time",), text[0].astype(str),
                                     {"long_name": "dominant loop", "description":
                                      f"loop with the largest absolute relative score through {variable}"})
    if runs is not None and any("run" in v[0] for v in data.values()):
        coords["run"] = run_coord
    dataset = xr.Dataset(data, coords=coords, attrs=attrs)
    return dataset


def dominance_by_decade(dataset: xr.Dataset, by: str = "loop_family", start: int = 2020,
                        stop: int | None = None) -> list[tuple[int, str, float]]:
    """(decade, the loop or family most often dominant over its years, that probability) per decade.

    ``by='loop_family'`` adds the probabilities of the loops of one family (dominance
    is exclusive within a run, so the sum is the share of run-years some loop of the
    family dominates).
    """
    probability = dataset["dominance probability"]
    grouped = probability.groupby(dataset[by]).sum() if by != "loop" else probability
    label = by if by != "loop" else "loop"
    times = dataset["time"].values
    stop = int(stop if stop is not None else times[-1])
    out = []
    for decade in range(start, stop, 10):
        window = grouped.sel(time=slice(decade, decade + 9.999))
        if window.sizes["time"] == 0:
            continue
        mean = window.mean("time")
        best = int(np.argmax(mean.values))
        out.append((decade, str(mean[label].values[best]), float(mean.values[best])))
    return out


def stacked_figure(dataset: xr.Dataset, path: Path, title: str = "", top: int = 8) -> Path:
    """Relative loop scores over time as stacked areas: reinforcing above zero, balancing below (as Stella draws them).

    Over an ensemble the median over runs is drawn. The ``top`` loops by mean absolute
    share are drawn one by one; the rest are gathered by sign.
    """
    from ..plotting import plt, save_figure  # imported here: matplotlib is slow to import and few calls draw

    relative = dataset["relative loop score"]
    if "variable_loop" in dataset.coords:
        relative = relative.where(dataset["variable_loop"], drop=True)
    if "quantile" in relative.dims:
        relative = relative.sel(quantile=0.5, method="nearest")
    if "run" in relative.dims:
        relative = relative.median("run")
    relative = relative.transpose("loop", "time").fillna(0.0)
    strength = np.abs(relative).mean("time").values
    order = np.argsort(-strength)
    shown = order[:top]
    rest = order[top:]
    times = relative["time"].values
    figure, axis = plt.subplots(figsize=(9, 5))
    up, down = np.zeros(len(times)), np.zeros(len(times))
    rows = [(str(relative["loop"].values[k]), relative.values[k]) for k in shown]
    if len(rest):
        values = relative.values[rest]
        rows.append(("other reinforcing loops", np.clip(values, 0, None).sum(axis=0)))
        rows.append(("other balancing loops", np.clip(values, None, 0).sum(axis=0)))
    for k, (name, values) in enumerate(rows):
        positive, negative = np.clip(values, 0, None), np.clip(values, None, 0)
        colour = f"C{k % 10}"
        label = name if len(name) <= 70 else name[:67] + "..."
        if positive.any():
            axis.fill_between(times, up, up + positive, color=colour, alpha=0.8, label=label, linewidth=0)
            up = up + positive
        if negative.any():
            axis.fill_between(times, down, down + negative, color=colour, alpha=0.8,
                              label=None if positive.any() else label, linewidth=0)
            down = down + negative
    axis.axhline(0, color="black", linewidth=0.6)
    axis.set_ylabel("relative loop score (reinforcing > 0 > balancing)")
    axis.set_xlabel("time")
    axis.set_title(title or "loops that matter", fontsize=10)
    axis.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    return save_figure(figure, path)


def dominance_figure(dataset: xr.Dataset, path: Path, title: str = "", top: int = 6) -> Path:
    """Over an ensemble: the probability that each loop family dominates each year, and when dominance first shifts."""
    from ..plotting import plt, save_figure  # imported here: matplotlib is slow to import and few calls draw

    probability = dataset["dominance probability"].groupby(dataset["loop_family"]).sum()
    order = np.argsort(-probability.mean("time").values)[:top]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    for k in order:
        name = str(probability["loop_family"].values[k])
        left.plot(probability["time"], probability.values[k], label=name if len(name) <= 60 else name[:57] + "...")
    left.set_ylabel("probability of dominating")
    left.set_ylim(0, 1)
    left.set_title(title or "dominant loop over the ensemble", fontsize=10)
    left.legend(fontsize=6)
    shifts = dominance_shifts(dataset, after=SHIFTS_AFTER).values
    shifts = shifts[np.isfinite(shifts)]
    if shifts.size:
        right.hist(shifts, bins=20, color="C7")
    right.set_xlabel(f"year the dominant loop family first shifts after {SHIFTS_AFTER:g}")
    right.set_ylabel("runs")
    figure.tight_layout()
    return save_figure(figure, path)


def dominance_shifts(dataset: xr.Dataset, after: float | None = None) -> xr.DataArray:
    """Per run, the first year (after the initial one, or ``after``) the dominant loop family differs from the one before.

    NaN if it never does. Families are the names of ``models/loops.toml`` (an unnamed
    loop is its own family), so a shift between two element paths of one named loop
    does not count.
    """
    dominant = dataset["dominant loop"]
    if "run" not in dominant.dims:
        dominant = dominant.expand_dims(run=[0])
    family = dict(zip(dataset["loop"].values.tolist(), dataset["loop_family"].values.tolist()))
    family[""] = ""
    values = np.vectorize(lambda name: family.get(name, name), otypes=[object])(
        dominant.transpose("run", "time").values)
    times = dataset["time"].values
    first = np.full(values.shape[0], np.nan)
    for r in range(values.shape[0]):
        row = values[r]
        for k in range(2, len(row)):
            if after is not None and times[k - 1] < after:
                continue
            if row[k] and row[k - 1] and row[k] != row[k - 1]:
                first[r] = times[k]
                break
    return xr.DataArray(first, dims=["run"], coords={"run": dominant["run"].values},
                        attrs={"long_name": "first dominance shift", "units": "year"})


def loops(model, scenario=None, params: xr.Dataset | None = None, *, variable: str | None = None,
          quantiles=None, link_scores: bool = False, max_loops: int = MAX_LOOPS, names: Path | None = LOOPS_FILE,
          force=None, time_step=None, final_time=None, chunk_size: int | None = None, pilot_runs: int = 4,
          backend: str = "auto") -> xr.Dataset:
    """Loop scores of ``model`` (see :meth:`migsd.Model.loops`); ``backend`` as in :func:`.batch.integrate`."""
    from ..engine.batch import DEFAULT_CHUNK, _kernel_for, base_inputs, batch_inputs, forced_inputs, simulation_times
    from ..engine.linkscores import KernelScorer, link_module, link_structure

    engine = model.engine
    if engine is None:
        raise AnalysisError(f"{model.path.name}: {model.engine_refusal}; loop scores need the batched engine")
    resolved, layers, settings = model._prepare(scenario, None, None, time_step, final_time, None)
    held, forced = forced_inputs(model, force)
    layers.apply(held, source="force=")
    values, initial = base_inputs(model, layers)
    runs = batch_inputs(model, params, values, initial) if params is not None else None
    total = runs or 1
    series = frozenset(k for k, v in values.items() if isinstance(v, tuple))
    cache = model.__dict__.setdefault("_link_structures", {})
    key = (series, frozenset(forced))
    if key not in cache:
        cache[key] = link_structure(engine.compiled, series, frozenset(forced))
    structure = cache[key]
    subscripts = engine.compiled.subscripts
    dims_of = _dims_of(engine.compiled)
    labels = {}
    for (source, target) in structure.edges():
        for node in (source, target):
            if node not in labels:
                labels[node] = element_label(structure.units[node[0]], node[1], subscripts, dims_of)
    times, save, saved = simulation_times(settings)
    consts = {k: float(settings[k]) for k in ("initial_time", "final_time", "time_step", "saveper")}

    # 'auto' stays on numpy here: the scoring (numpy on either backend) costs four times the integration, so
    # the kernel saves no time, while reading its values back takes memory (benchmarks/loop_scores.py)
    kernel = _kernel_for(engine, "numpy" if backend == "auto" else backend)
    engine.last_backend = "numpy" if kernel is None else "compiled"

    def integrate(chosen, reducer, rows_total, limit=None):
        score = np.asarray([s and n > 0 for n, s in enumerate(save)])
        if limit is not None:
            score &= np.isin(np.arange(len(save)), limit)
        before = np.append(score[1:], False)
        chunk = max(1, int(chunk_size or DEFAULT_CHUNK))
        if kernel is not None:
            scorer = KernelScorer(engine, kernel, structure, series, chosen, reducer)
            chunk = scorer.chunk_rows(int(np.sum(score | before)), chunk)
        else:
            namespace = link_module(engine, structure, series, frozenset(forced), chosen, reducer)
            namespace["_score"], namespace["_before"] = score, before
            simulate = namespace["simulate"]
        for start in range(0, rows_total, chunk):
            stop = min(rows_total, start + chunk)
            P = {k: _rows(v, start, stop) for k, v in values.items()}
            I = {k: (_rows(v[0], start, stop), v[1]) for k, v in initial.items()}
            F = {k: (_rows(v[0], start, stop),) + tuple(v[1:]) for k, v in forced.items()}
            reducer.begin(start, stop - start)
            if kernel is not None:
                scorer.score(P, I, F, stop - start, times, score, before, consts)
                continue
            with np.errstate(all="ignore"):
                simulate(P, I, F, times, save, {}, consts, stop - start)

    def pilot():
        scored = [n for n, s in enumerate(save) if s and n > 0]
        picks = scored[:: max(1, len(scored) // 12)]
        collector = _Collector({n: k for k, n in enumerate(picks)}, structure.count)
        integrate(None, collector, min(total, pilot_runs), limit=picks)
        return collector.maximum

    # one set of loops per model, inputs of the pilot runs and budget: found once, shared by later calls
    found = model.__dict__.setdefault("_loop_sets", {})
    pilot_key = (key, max_loops, _digest_inputs(values, initial, forced, min(total, pilot_runs)),
                 tuple(settings[k] for k in ("initial_time", "final_time", "time_step", "saveper")))
    if pilot_key not in found:
        found[pilot_key] = find_loops(structure, labels, max_loops=max_loops, pilot=pilot)
    loop_set = _copy_loops(found[pilot_key])
    name_loops(loop_set, read_names(names, model) if names is not None and Path(names).exists() else [])
    chosen = loop_set.columns
    target_cells = None
    if variable is not None:
        target_cells = _variable_nodes(model, structure, variable)
        through = np.asarray([any(n in target_cells for n in l.nodes) for l in loop_set.loops], dtype=bool)
    steps = {n: k for k, n in enumerate(k for k, s in enumerate(save) if s)}
    reducer = _Reducer(loop_set, chosen, total, steps, quantiles=quantiles, keep_runs=quantiles is None,
                       variable_loops=through if variable is not None else None, link_scores=link_scores)
    if loop_set.loops:
        integrate(chosen, reducer, total)
    run_coord = None
    if runs is not None:
        run_coord = params["run"].values if "run" in params.coords else np.arange(runs)
    dataset = loop_dataset(model, loop_set, reducer, saved, variable=variable, runs=runs, run_coord=run_coord,
                           quantiles=quantiles, chosen=chosen)
    dataset.attrs["scenario"] = resolved.name if resolved is not None else "none"
    return dataset


def _digest_inputs(values: dict, initial: dict, forced: dict, rows: int) -> str:
    """Digest of the inputs of the first ``rows`` runs: what the pilot of the loop search integrates."""
    digest = hashlib.sha256()
    for part in (values, initial, forced):
        for name in sorted(part):
            item = part[name]
            arrays = item if isinstance(item, tuple) else (item,)
            digest.update(name.encode())
            for array in arrays:
                array = np.asarray(array)
                digest.update(np.ascontiguousarray(array[:rows] if array.ndim and array.shape[0] > 1 else array))
    return digest.hexdigest()


def _copy_loops(loop_set: LoopSet) -> LoopSet:
    loops = [Loop(l.nodes, l.columns, l.partition, ident=l.ident, text=l.text) for l in loop_set.loops]
    return LoopSet(loop_set.structure, loops, loop_set.search, loop_set.labels)


class _Collector:
    """Largest absolute link scores over the pilot runs at a few times: what the strongest-path search reads."""

    def __init__(self, steps: dict[int, int], links: int):
        self.steps = steps
        self.maximum = np.zeros((len(steps), links))

    def begin(self, start, rows):
        pass

    def __call__(self, n, scores):
        if n in self.steps:
            self.maximum[self.steps[n]] = np.nanmax(np.abs(scores[:-1]), axis=1)


def _rows(value, start, stop):
    if isinstance(value, tuple):
        knots, frames = value
        return knots, (frames[start:stop] if frames.shape[0] > 1 else frames)
    return value[start:stop] if value.shape[0] > 1 else value


def _dims_of(compiled):
    def dims(unit):
        if unit.key in compiled.nodes:
            return compiled.nodes[unit.key].dims
        owner = compiled.nodes[compiled.states[unit.key].owner]
        return owner.dims[len(owner.dims) - len(unit.shape):]
    return dims


def _variable_nodes(model, structure, variable: str) -> set:
    """Element-level nodes of ``variable`` ('Restrictiveness[North]' or a whole variable)."""
    from ..engine.batch import _index
    from ..parameters import _KEY

    match = _KEY.match(variable)
    if not match:
        raise AnalysisError(f"variable: '{variable}' is not a .mdl name (write 'name' or 'name[Element,...]')")
    name = match.group("name")
    key = canonical(name)
    if key not in model.variables:
        raise AnalysisError(f"variable: '{name}' is not a variable of {model.path.name}."
                            + did_you_mean(name, [v.name for v in model.variables.values()]))
    found = model.variables[key]
    ident = found.py_name
    if ident not in structure.units:
        raise AnalysisError(f"variable: '{found.name}' does not change over time, so no loop passes through it")
    unit = structure.units[ident]
    subs = match.group("subs")
    if subs is None:
        return {(ident, c) for c in range(unit.size)}
    elements = tuple(s.strip() for s in subs.split(","))
    if len(elements) != len(found.subscripts):
        raise AnalysisError(f"variable: '{variable}' gives {len(elements)} element(s); '{found.name}' is "
                            f"subscripted by [{', '.join(found.subscripts)}]")
    for element, subscript in zip(elements, found.subscripts):
        if element not in model.subscripts[subscript]:
            raise AnalysisError(f"variable: '{element}' is not an element of {subscript} "
                                f"({', '.join(model.subscripts[subscript])})."
                                + did_you_mean(element, model.subscripts[subscript]))
    index = _index(model, found, elements)
    return {(ident, int(np.ravel_multi_index(index, unit.shape)))}


__all__ = ["LOOPS_FILE", "Loop", "LoopSet", "MAX_LOOPS", "dominance_by_decade", "dominance_figure", "dominance_shifts",
           "find_loops", "loops", "stacked_figure"]

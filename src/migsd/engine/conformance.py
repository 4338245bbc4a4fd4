"""Run the SDXorg test-models through the engine and compare with their reference outputs.

Each model folder holds one model exercising one language feature, as a Vensim .mdl
and, for many features, as an XMILE file (read by pysd's XMILE reader into the
same compilation), and the reference output (most produced by Vensim), which both
are checked against. A model is *refused* when the engine
does not compile one of its constructs, *passes* when every reference column is
matched within pysd's own tolerance (``abs(x - y) <= atol + rtol * abs(y)``, both
1e-5, as in ``pysd.tools.benchmarking.assert_allclose``), and *fails* otherwise.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MigsdError
from ..paths import SHARED_DIR
from .batch import integrate, simulation_times
from .codegen import load_engine
from .compiler import UnsupportedConstruct

RTOL = 1e-5
ATOL = 1e-5
#: ``$MIGSD_CONFORMANCE_DIR``, else the test-models' tests/ folder in ../shared beside the repository.
DEFAULT_ROOT = Path(
    os.environ.get("MIGSD_CONFORMANCE_DIR")
    or SHARED_DIR / "conformance" / "sdxorg-test-models" / "tests"
)


@dataclass
class Outcome:
    model: str  # folder/file.mdl, relative to the tests folder
    status: str  # 'passes', 'fails', 'refused', 'no reference'
    detail: str = ""


#: The formats checked, by suffix, as the report names them.
FORMATS = {".mdl": "Vensim", ".xmile": "XMILE"}


def find_models(root: Path = DEFAULT_ROOT) -> list[Path]:
    """Every test-model under ``root``, the Vensim ones first: per folder and format, the ``test_*`` models,
    else its only ones.

    A folder may also hold a helper model (e.g. one that generates another's data)
    whose reference output is not its own.
    """
    found = []
    folders = sorted(p for p in Path(root).iterdir() if p.is_dir())
    for suffix in FORMATS:
        for folder in folders:
            found.extend(sorted(folder.glob(f"test_*{suffix}")) or sorted(folder.glob(f"*{suffix}")))
    return found


def model_format(label: str) -> str:
    """'Vensim' or 'XMILE' for a model's label or path."""
    return FORMATS.get(Path(label).suffix.lower(), "other")


def _key(text: str) -> str:
    return re.sub(r"[\s_]+", " ", text.strip().strip('"')).lower()


def _reference(folder: Path):
    for name in ("output.csv", "output.tab"):
        path = folder / name
        if path.is_file():
            return _read_output(path)
    return None


def run_default(engine, names: set[str] | None = None, backend: str = "numpy") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One run with the .mdl's own settings; values keyed 'Name[elem,...]' (case kept)."""
    settings = engine.control_settings()
    _, _, saved = simulation_times(settings)
    wanted = {ident: node.shape for ident, node in engine.nodes.items()
              if not node.internal and node.kind in ("constant", "dynamic")}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pysd's own notices (e.g. a delay order lowered) are expected here
        _, out, _ = integrate(engine, {}, {}, 1, settings, wanted, backend=backend)
    columns = {}
    subscripts = engine.compiled.subscripts
    for ident, values in out.items():
        node = engine.nodes[ident]
        series = values[0] if node.kind == "dynamic" else np.broadcast_to(values[0], (len(saved),) + node.shape)
        if not node.dims:
            columns[node.name] = np.asarray(series, dtype=float).reshape(len(saved))
            continue
        for index in np.ndindex(*node.shape):
            labels = ",".join(subscripts[d][i] for d, i in zip(node.dims, index))
            columns[f"{node.name}[{labels}]"] = series[(slice(None),) + index]
    for control in ("initial_time", "final_time", "time_step", "saveper"):
        if control in engine.nodes:
            columns[engine.nodes[control].name] = np.full(len(saved), settings[control])
    return saved, columns


def check(mdl_path: Path, root: Path = DEFAULT_ROOT) -> Outcome:
    """Compile, run and compare one test-model."""
    mdl_path = Path(mdl_path)
    label = mdl_path.relative_to(root).as_posix() if mdl_path.is_relative_to(root) else mdl_path.name
    canon = _reference(mdl_path.parent)
    if canon is None:
        return Outcome(label, "no reference", "no output.csv or output.tab")
    try:
        engine = load_engine(mdl_path)
    except UnsupportedConstruct as refusal:
        return Outcome(label, "refused", str(refusal))
    except Exception as error:  # pysd's parser raises many kinds on a file it cannot read
        return Outcome(label, "refused", f"not read: {type(error).__name__}: {str(error).splitlines()[0][:120]}")
    try:
        times, columns = run_default(engine)
    except (MigsdError, ArithmeticError, ValueError, IndexError, TypeError, KeyError, NameError) as error:
        return Outcome(label, "fails", f"run failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}")
    ours = {_key(k): v for k, v in columns.items()}
    problem = _compare(canon, times, ours)
    if problem is None:
        return Outcome(label, "passes")
    stella = mdl_path.parent / "output_stella.csv"
    if model_format(label) == "XMILE" and stella.is_file() and _compare(_read_stella(stella), times, ours) is None:
        # an XMILE file converted from the .mdl may not be the .mdl's model (XMILE has no ACTIVE INITIAL, say);
        # that it matches Stella's own run of it says the engine read it right
        problem += ", though it matches output_stella.csv (Stella's run of the model)"
    return Outcome(label, "fails", problem)


def _read_output(path: Path):
    from pysd.py_backend.utils import detect_encoding, load_outputs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_outputs(path, encoding=detect_encoding(path))


def _read_stella(path: Path):
    """Stella's exported run: the first column is time, whatever its units call it."""
    import pandas as pd

    return pd.read_csv(path, index_col=0)


def _compare(canon, times, ours: dict) -> str | None:
    """What differs between a reference output and the engine's columns; ``None`` when nothing does."""
    canon_times = np.asarray(canon.index, dtype=float)
    if len(canon_times) != len(times) or not np.allclose(canon_times, times):
        return f"saved times differ: reference {len(canon_times)}, engine {len(times)}"
    missing, worst, worst_name = [], 0.0, ""
    for column in canon.columns:
        key = _key(str(column))
        if key == "time":
            continue
        if key not in ours:
            missing.append(str(column))
            continue
        expected = np.asarray(canon[column].values, dtype=float)
        actual = ours[key]
        if np.all(np.isnan(expected[1:])):  # Vensim writes constants in the first row only
            expected, actual = expected[:1], actual[:1]
        fine = np.abs(actual - expected) <= ATOL + RTOL * np.abs(expected)
        fine |= np.isnan(actual) & np.isnan(expected)
        if not np.all(fine):
            excess = float(np.nanmax(np.abs(actual - expected) / (ATOL + RTOL * np.abs(expected))))
            if excess > worst or not worst_name:
                worst, worst_name = excess, str(column)
    if missing:
        return f"{len(missing)} reference column(s) not produced, e.g. '{missing[0]}'"
    if worst_name:
        return f"'{worst_name}' off by {worst:.3g} x the tolerance"
    return None


#: How close the compiled backend must come to the numpy engine: relative to each variable's largest magnitude.
BACKEND_RTOL = 1e-12


def backends_differ(reference: dict[str, np.ndarray], compiled: dict[str, np.ndarray],
                    rtol: float = BACKEND_RTOL) -> str | None:
    """Where two runs' values differ: NaNs or infinities elsewhere, or more than ``rtol`` x the variable's
    largest finite magnitude; ``None`` where they agree in every variable."""
    if set(reference) != set(compiled):
        return f"different variables: {sorted(set(reference) ^ set(compiled))}"
    for name, x in reference.items():
        x, y = np.asarray(x, dtype=float), np.asarray(compiled[name], dtype=float)
        if x.shape != y.shape:
            return f"'{name}' has shape {y.shape}, not {x.shape}"
        finite = np.isfinite(x)
        if not np.array_equal(finite, np.isfinite(y)) or not np.array_equal(x[~finite], y[~finite],
                                                                             equal_nan=True):
            return f"'{name}' is NaN or infinite at other places"
        scale = float(np.max(np.abs(x[finite]), initial=0.0))
        gap = float(np.max(np.abs(x[finite] - y[finite]), initial=0.0))
        if gap > rtol * scale:
            return f"'{name}' differs by {gap:.3g} ({gap / scale:.3g} of its largest value)"
    return None


def agreement(mdl_path: Path, root: Path = DEFAULT_ROOT, cache: Path | None = None) -> Outcome:
    """Whether the compiled backend gives the numpy engine's values for one test-model:
    'agrees', 'differs' or 'refused' (a construct the kernel does not write)."""
    from .numba_codegen import CompiledUnsupported

    mdl_path = Path(mdl_path)
    label = mdl_path.relative_to(root).as_posix() if mdl_path.is_relative_to(root) else mdl_path.name
    engine = load_engine(mdl_path, cache)
    _, reference = run_default(engine, backend="numpy")
    try:
        _, compiled = run_default(engine, backend="compiled")
    except CompiledUnsupported as refusal:
        return Outcome(label, "refused", str(refusal))
    problem = backends_differ(reference, compiled)
    return Outcome(label, "agrees" if problem is None else "differs", problem or "")


def run_agreement(models: list[Path], root: Path = DEFAULT_ROOT, cache: Path | None = None,
                  progress: bool = False) -> list[Outcome]:
    """:func:`agreement` for each of ``models`` (those the numpy engine passes)."""
    if progress:
        from tqdm.auto import tqdm

        models = tqdm(models, desc="compiled backend", unit="model")
    return [agreement(path, root, cache) for path in models]


def agreement_report(outcomes: list[Outcome]) -> str:
    """The compiled backend against the numpy engine (Markdown): counts per format, then every model not agreeing."""
    lines = ["## The compiled backend against the numpy engine", "",
             f"Every model that passes above, run on both backends: every variable within {BACKEND_RTOL:g} x its "
             "largest magnitude.", ""]
    for name in FORMATS.values():
        group = [o for o in outcomes if model_format(o.model) == name]
        counts: dict[str, int] = {}
        for outcome in group:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if group:
            lines.append(f"- {name}: {len(group)} models: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    others = [o for o in outcomes if o.status != "agrees"]
    if others:
        lines += ["", "| model | outcome | detail |", "|---|---|---|"]
        lines += [f"| `{o.model}` | {o.status} | {o.detail.replace('|', chr(92) + '|')} |" for o in others]
    return "\n".join(lines) + "\n"


def run_all(root: Path = DEFAULT_ROOT, progress: bool = False) -> list[Outcome]:
    models = find_models(root)
    if progress:
        from tqdm.auto import tqdm

        models = tqdm(models, desc="conformance", unit="model")
    return [check(path, root) for path in models]


def report(outcomes: list[Outcome]) -> str:
    """The generated conformance list (Markdown)."""
    by_format: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_format.setdefault(model_format(outcome.model), []).append(outcome)
    lines = [
        "# Engine conformance with the SDXorg test-models",
        "",
        "Generated by `migsd conformance --write docs/conformance.md`; do not edit by hand.",
        "`make test` reruns every model and fails if any outcome below changes for the worse.",
        f"Tolerance: |engine - reference| <= {ATOL:g} + {RTOL:g} x |reference| (pysd's own test tolerance).",
        "Vensim models are read by pysd's Vensim reader, XMILE models by its XMILE reader, into the same",
        "compilation; both are checked against the folder's output.csv (or output.tab).",
        "",
    ]
    for name, group in by_format.items():
        counts: dict[str, int] = {}
        for outcome in group:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        lines.append(f"- {name}: {len(group)} models: "
                     + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    for name, group in by_format.items():
        lines += ["", f"## {name}", "", "| model | outcome | detail |", "|---|---|---|"]
        for outcome in group:
            detail = outcome.detail.replace("|", "\\|")
            lines.append(f"| `{outcome.model}` | {outcome.status} | {detail} |")
    return "\n".join(lines) + "\n"


def read_report(text: str) -> dict[str, str]:
    """Outcome per model from a generated report."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^\| `([^`]+)` \| ([a-z ]+) \|", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found

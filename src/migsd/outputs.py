"""Run results as xarray Datasets that explain themselves, and their files."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from .errors import MigsdError
from .names import snake_case
from .paths import repo_relative
from .units import units_attr

if TYPE_CHECKING:
    from .model import Model

REFERENCES = (
    "Szabla, C. (2021) Reimagining Global Migration Governance: From Insufficient Ideas to "
    "South-South Solutions, Berkeley Journal of International Law 39(1); "
    "UN DESA World Population Prospects 2024; UN DESA International Migrant Stock 2020"
)


def variable_attrs(variable) -> dict[str, str]:
    """The attributes every output variable carries, taken from the .mdl."""
    return {
        "long_name": variable.name,
        "units": units_attr(variable.units, variable.name),
        "mdl_units": variable.units,
        "description": variable.comment,
        "sector": variable.sector,
    }


def _versions() -> str:
    import pint
    import pysd

    from ._version import __version__

    return (
        f"migsd {__version__}; pysd {pysd.__version__}; xarray {xr.__version__}; numpy {np.__version__}; "
        f"pint {pint.__version__}; python {platform.python_version()}"
    )


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, as every output records its inputs by."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def provenance(model: Model, scenarios=()) -> dict[str, str]:
    """What an output was computed from: the model, calibration and scenario files with their sha256.

    ``scenario_sha256`` lists ``file=digest`` for each scenario, separated by ``; ``.
    """
    calibration = getattr(model, "calibration", None)
    return {
        "model_file": repo_relative(model.path),
        "model_sha256": model.sha256,
        "calibration_file": repo_relative(calibration) if calibration is not None else "none",
        "calibration_sha256": file_sha256(calibration) if calibration is not None else "",
        "scenario_sha256": scenario_digests(scenarios),
    }


def scenario_digests(scenarios) -> str:
    """``file=sha256`` per scenario, ``; ``-separated; a scenario made in memory (the explorer's) says so."""
    return "; ".join(f"{repo_relative(s.path)}={file_sha256(s.path)}" if Path(s.path).is_file()
                     else f"{s.name}=not read from a file" for s in scenarios if s is not None)


def build_dataset(
    model: Model, times, over_time, once, *, settings, scenario, sources, engine: str = "", runs: int | None = None
) -> xr.Dataset:
    """Arrays of a run (or of ``runs`` runs, leading axis) as a Dataset with dims, coords and attrs from the .mdl.

    ``over_time`` maps variables to arrays shaped (time, *subscripts), ``once`` to
    (*subscripts); with ``runs`` both have a leading run axis.
    """
    times = np.asarray(times, dtype=float)
    lead = ("run",) if runs is not None else ()
    coords: dict[str, object] = {"time": ("time", times, {"long_name": "Time", "units": "Year", "mdl_units": "Year"})}
    if runs is not None:
        coords["run"] = ("run", np.arange(runs), {"long_name": "Run"})
    for subscript, elements in model.subscripts.items():
        variable_dim = snake_case(subscript)
        coords[variable_dim] = (variable_dim, np.asarray(elements, dtype=object), {"long_name": subscript})
    data_vars = {}
    for variable, values in over_time.items():
        data_vars[variable.name] = xr.Variable((*lead, "time", *variable.dims), values, variable_attrs(variable))
    for variable, values in once.items():
        data_vars[variable.name] = xr.Variable((*lead, *variable.dims), np.asarray(values, dtype=float),
                                               variable_attrs(variable))
    used_dims = {d for v in data_vars.values() for d in v.dims}
    dataset = xr.Dataset(
        data_vars, coords={k: v for k, v in coords.items() if k in used_dims or k in ("time", "run")}
    )
    dataset.attrs = {
        "title": "migsd run" + (f": {scenario.title}" if scenario is not None else ""),
        **provenance(model, [scenario]),
        "scenario": scenario.name if scenario is not None else "",
        "scenario_file": repo_relative(scenario.path) if scenario is not None else "",
        "parameter_sources": "; ".join(repo_relative(Path(s)) if os.path.exists(s) else s for s in sources),
        "initial_time": settings["initial_time"],
        "final_time": settings["final_time"],
        "time_step": settings["time_step"],
        "saveper": settings["saveper"],
        "engine": engine,
        "versions": _versions(),
        "history": f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} migsd run",
        "references": REFERENCES,
    }
    return dataset


def check_output_path(path: str | os.PathLike, *, overwrite: bool = False, option: str = "--out",
                      example: str = "run.nc", replace: str = "add --overwrite") -> Path:
    """``path`` as a file migsd may write, checked before any work: not a folder, in an existing folder, new
    unless ``overwrite``. migsd creates no folders: a typo in one is an error, not a new folder."""
    path = Path(path)
    if path.is_dir():
        raise MigsdError(f"{option} {path}: is a folder; {option} takes a file name such as {path / example}")
    if not path.parent.is_dir():
        raise MigsdError(f"{option} {path}: the folder {path.parent} does not exist (migsd creates no folders); "
                         "create it or choose another")
    if path.exists() and not overwrite:
        raise MigsdError(f"{path} exists; {replace} to replace it")
    return path


def write_atomically(path: Path, write) -> Path:
    """``write(temporary)`` then rename it to ``path``; a write that fails leaves no partial file and says why."""
    temporary = path.with_name(path.name + ".partial")
    try:
        write(temporary)
        os.replace(temporary, path)
    except (OSError, RuntimeError, ValueError, TypeError) as error:
        # netCDF and matplotlib report a full disk or a read-only folder as any of these
        temporary.unlink(missing_ok=True)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise MigsdError(f"cannot write {path}: {reason}; nothing was written") from error
    return path


def to_netcdf(dataset: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``dataset`` to netCDF; an existing file is kept unless ``overwrite``; the folder must exist."""
    path = check_output_path(path, overwrite=overwrite, replace="pass overwrite=True (--overwrite)")
    encoded = dataset.copy()
    for name in list(encoded.coords):
        if encoded[name].dtype == object:
            encoded[name] = encoded[name].astype(str)
    return write_atomically(path, lambda temporary: encoded.to_netcdf(temporary, format="NETCDF4"))


def open_results(path: str | os.PathLike, *, quantify: bool = False) -> xr.Dataset:
    """Open a results file; with ``quantify`` the variables carry pint units."""
    dataset = xr.open_dataset(path)
    if quantify:
        import pint_xarray  # noqa: F401  (registers the .pint accessor)

        from .units import ureg

        dataset = dataset.pint.quantify(unit_registry=ureg)
    return dataset

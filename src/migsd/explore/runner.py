"""The explorer's runs: the explored scenario beside the status quo, and the calibrated ensemble's spread.

Both use the batched engine. The explored scenario and the status quo (with the
same uncertain-parameter settings, so that the comparison isolates the levers)
are integrated together in one batch; the ensemble's members are integrated as
another batch, deduplicated first, because resampled members repeat.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..indicators import YIELD_VARIABLE
from ..names import canonical
from .controls import ExploreError

#: The spread shown as the ensemble band: the 5th to 95th percentile of the members.
BAND_QUANTILES = (0.05, 0.95)


@dataclass
class Outcome:
    """One update's results: the runs, and how long the engine took."""

    runs: xr.Dataset
    seconds: float
    count: int


class Runner:
    """Runs scenarios for the explorer; one at a time, whichever page session asks."""

    def __init__(self, model, columns: list[str], ensemble: xr.Dataset | None = None):
        self.model = model
        self.columns = list(columns)
        self._lock = threading.Lock()
        self._status_quo: dict[tuple, xr.Dataset] = {}
        self.members = None
        self.member_rows = None
        if ensemble is not None and ensemble.sizes.get("run", 0):
            table = np.stack([ensemble[name].values for name in ensemble.data_vars], axis=1)
            _, first, inverse = np.unique(table, axis=0, return_index=True, return_inverse=True)
            order = np.argsort(first)
            self.members = ensemble.isel(run=first[order])
            # each of the original members, as a row of the deduplicated batch
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            self.member_rows = rank[inverse.ravel()]

    @property
    def member_count(self) -> int:
        return 0 if self.member_rows is None else int(self.member_rows.size)

    def compare(self, explored, status_quo, status_quo_key: tuple, wanted=None) -> Outcome | None:
        """The explored scenario and the status quo, one run each, with ``scenario`` = explored name, status quo name.

        The status quo depends only on the uncertain parameters; it is kept per
        ``status_quo_key`` and rerun only when those change. ``wanted()`` is asked
        once the engine is free: ``False`` (a newer request is waiting) skips the
        run and gives ``None``.
        """
        with self._lock:
            if wanted is not None and not wanted():
                return None
            began = time.perf_counter()
            cached = self._status_quo.get(status_quo_key)
            if cached is None:
                both = self.model.run_batch(None, scenario=[explored, status_quo], return_columns=self.columns)
                _check_finite(both, explored.name)  # before a failed status quo could be kept
                both = both.isel(run=0, drop=True).drop_vars(["scenario_title", "failed", "failure"],
                                                             errors="ignore")
                cached = both.sel(scenario=[status_quo.name])
                if len(self._status_quo) > 64:
                    self._status_quo.clear()
                self._status_quo[status_quo_key] = cached
                count = 2
            else:
                own = self.model.run_batch(None, scenario=explored, return_columns=self.columns)
                _check_finite(own, explored.name)
                own = own.isel(run=0, drop=True).drop_vars(["failed", "failure"], errors="ignore")
                both = xr.concat([own.expand_dims(scenario=[explored.name]), cached], dim="scenario",
                                 coords="minimal", compat="override", combine_attrs="override")
                count = 1
            seconds = time.perf_counter() - began
        _check_finite(both, explored.name)
        return Outcome(both, seconds, count)

    def spread(self, explored, fixed: set[str], wanted=None) -> Outcome | None:
        """Every calibrated member under the explored scenario: the band's quantiles and the members' yield years.

        ``fixed`` names the .mdl constants the explored scenario sets on purpose;
        members do not override them. ``None`` without an ensemble, or when
        ``wanted()`` says the request is stale (as in :meth:`compare`).
        """
        if self.members is None:
            return None
        fixed = {canonical(name) for name in fixed}
        members = self.members.drop_vars([n for n in self.members.data_vars if canonical(_base_name(n)) in fixed])
        with self._lock:
            if wanted is not None and not wanted():
                return None
            began = time.perf_counter()
            if members.data_vars:
                runs = self.model.run_batch(members, scenario=explored, return_columns=self.columns)
            else:  # every calibrated parameter is set on purpose: the members coincide
                runs = self.model.run_batch(None, scenario=explored, return_columns=self.columns)
                runs = runs.isel(run=np.zeros(self.members.sizes["run"], dtype=int))
            seconds = time.perf_counter() - began
        _check_finite(runs, f"{explored.name} (calibrated members)")
        every = runs.isel(run=self.member_rows if members.data_vars else np.arange(runs.sizes["run"]))
        over_time = [n for n in every.data_vars if "time" in every[n].dims]
        band = every[over_time].quantile(list(BAND_QUANTILES), dim="run")
        if YIELD_VARIABLE in every:
            band[YIELD_VARIABLE] = every[YIELD_VARIABLE]
        return Outcome(band, seconds, int(runs.sizes["run"]))


def _base_name(key: str) -> str:
    return key.split("[", 1)[0].strip()


def _check_finite(runs: xr.Dataset, label: str) -> None:
    """Refuse runs the engine marked failed (``failed``/``failure``, as run_batch gives them) or holding NaN."""
    if "failed" in runs.coords and bool(runs["failed"].any()):
        reasons = sorted({str(r) for r in np.atleast_1d(runs["failure"].values).ravel() if str(r)})
        raise ExploreError(f"the run of '{label}' failed: {reasons[0]}"
                           + (f" (and {len(reasons) - 1} other failure(s))" if len(reasons) > 1 else ""))
    bad = []
    for name, values in runs.data_vars.items():
        if name == YIELD_VARIABLE or "time" not in values.dims:
            continue
        finite = np.isfinite(values)
        if not bool(finite.all()):
            others = [d for d in values.dims if d != "time"]
            not_finite_at = (~finite).any(others) if others else ~finite
            first = float(values["time"].values[not_finite_at.transpose("time").values][0])
            bad.append(f"'{name}' (from {first:g})")
    if bad:
        raise ExploreError(f"the run of '{label}' gave values that are not finite numbers: {', '.join(bad)}")

"""The one pint registry of migsd, with the .mdl's Vensim unit spellings."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pint

from .errors import ModelError

UNIT_DEFINITIONS = Path(__file__).with_name("units.txt")


def _vensim_spelling(text: str) -> str:
    text = text.replace("$", "dollar")
    return re.sub(r"(?<![\w.])%", "percent", text)


ureg = pint.UnitRegistry(
    preprocessors=[_vensim_spelling], autoconvert_offset_to_baseunit=True, force_ndarray_like=True
)
ureg.load_definitions(UNIT_DEFINITIONS)
ureg.formatter.default_format = "~C"


def strip_range(mdl_units: str) -> str:
    """The unit part of a .mdl units field, without Vensim's ``[min,max,step]`` range."""
    return re.sub(r"\[[^\]]*\]\s*$", "", mdl_units or "").strip()


@lru_cache(maxsize=None)
def parse_units(mdl_units: str, variable: str = "") -> pint.Unit:
    """Parse a .mdl units string (e.g. ``Person/Year``, ``$/(Person*Year)``, ``Dmnl [0,1]``)."""
    text = strip_range(mdl_units)
    if not text:
        return ureg.dimensionless
    try:
        return ureg.parse_units(text)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, ValueError, AttributeError) as error:
        where = f" of '{variable}'" if variable else ""
        raise ModelError(f"units{where} '{mdl_units}' cannot be parsed: {error}") from error


def units_attr(mdl_units: str, variable: str = "") -> str:
    """The ``units`` attribute written on outputs: parseable by :data:`ureg` and by pint-xarray."""
    unit = parse_units(mdl_units, variable)
    if unit == ureg.dimensionless:
        return "dimensionless"
    return f"{unit:~C}"

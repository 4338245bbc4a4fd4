"""One unit registry that reads the .mdl's Vensim spellings."""

import pytest

from migsd.errors import ModelError
from migsd.units import parse_units, ureg


def test_every_unit_string_of_the_model_parses(model):
    for variable in model.variables.values():
        parse_units(variable.units, variable.name)


@pytest.mark.parametrize(
    "mdl, expected",
    [("Person/Year", "person / year"), ("$/(Person*Year)", "dollar / person / year"), ("Dmnl [0,1]", "dimensionless"),
     ("1/Year", "1 / year"), ("Year [0,?]", "year")],
)
def test_vensim_spellings(mdl, expected):
    assert parse_units(mdl).dimensionality == ureg.parse_units(expected).dimensionality


def test_undefined_unit_names_the_variable():
    with pytest.raises(ModelError, match=r"units of 'x' 'Widgets/Year' cannot be parsed"):
        parse_units("Widgets/Year", "x")

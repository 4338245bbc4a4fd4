"""migsd check: units of every equation, behaviour check files, Reality Checks, time-step halving."""

import pytest

import migsd
from migsd.checks.behaviour import all_checks, load_checks, run_check
from migsd.checks import check_model
from migsd.cli import main
from migsd.errors import ScenarioError
from migsd.checks.units import check_units

from ..conftest import DATA

UNITS = DATA / "units"


@pytest.mark.parametrize(
    "fixture, line, message",
    [
        ("added_units.mdl", 14, r"'nonsense': adds Person and Year"),
        ("flow_mismatch.mdl", 2, r"'Population': its flows are in Person; a stock in Person needs flows in Person/Year"),
        ("lookup_input.mdl", 14, r"'effect': the input to the lookup 'crowding effect' is in Person; a lookup takes a Dmnl input"),
        ("undefined_unit.mdl", 2, r"'people': units 'Persn' are not defined"),
        ("time_constant.mdl", 14, r"'smoothed': the SMOOTH time is in Dmnl; it must be in the time unit, Year"),
    ],
)
def test_each_kind_of_unit_error_is_reported_with_variable_and_line(fixture, line, message):
    findings = check_units(UNITS / fixture)
    errors = [f for f in findings if f.severity == "error"]
    assert len(errors) == 1, findings
    assert errors[0].line == line
    assert errors[0].file == fixture
    assert __import__("re").search(message, str(errors[0])), str(errors[0])


def test_declared_units_that_disagree_with_the_equation_are_an_error(tmp_path):
    text = (UNITS / "added_units.mdl").read_text().replace("people + years", "people / years")
    (tmp_path / "rate.mdl").write_text(text)
    (finding,) = check_units(tmp_path / "rate.mdl")
    assert str(finding).endswith("'nonsense': the equation gives Person/Year; the .mdl declares Person")


def test_missing_units_are_a_warning_listed_apart():
    report = check_model(UNITS / "no_units.mdl", behaviour=False)
    assert report.errors == [] and report.ok
    assert [str(w) for w in report.warnings] == ["no_units.mdl:2: warning: 'share': has no units"]
    assert "warnings:" in report.text()


def test_the_shipped_model_is_dimensionally_consistent():
    assert check_units(migsd.load_model().path) == []


def test_cli_exit_code_is_non_zero_on_a_unit_error(capsys):
    assert main(["check", str(UNITS / "added_units.mdl")]) == 1
    assert "added_units.mdl:14: error: 'nonsense': adds Person and Year" in capsys.readouterr().out
    assert main(["check", str(UNITS / "no_units.mdl"), "--units-only"]) == 0


@pytest.mark.parametrize(
    "fixture, message",
    [
        ("unknown_key.toml", r"unknown_key.toml: \[\[check\]\] 1 \('a check with a typo'\): unknown key\(s\) \['sett'\]"),
        ("unknown_variable.toml", r"'total IOM placement' is not a variable of migsd.mdl.*total IOM placements"),
        ("bad_stat.toml", r"expect 1: stat 'median' is not one of max, min"),
        ("no_bound.toml", r"expect 1: give a bound, 'below' and/or 'above'"),
        ("bad_element.toml", r"'Mars' is not an element of Destination"),
        ("bad_against.toml", r"expect 1: against 'status quo' is not one of 'baseline' \(the run without the check's "
                             r"set and force\)"),
    ],
)
def test_bad_check_files_are_rejected_naming_file_and_key(model, fixture, message):
    with pytest.raises(ScenarioError, match=message):
        load_checks(DATA / "checks" / fixture, model)


def test_reality_checks_in_the_mdl_are_run_and_unsupported_ones_reported():
    model = migsd.load_model(DATA / "models" / "reality.mdl")
    checks, not_run = all_checks(model)
    results = {c.name: run_check(model, c) for c in checks}
    assert results["empty stock stays small"].passed
    assert not results["stock grows without inflow"].passed
    assert "violated: min of 'Stock' >= 10" in str(results["stock grows without inflow"])
    assert not_run == ["reality.mdl reality check 'stepped': not run: "
                       "'Stock <= RC_STEP_CHECK(1, Stock, 0.1)' is not 'variable op number'"]


def test_a_failing_behaviour_check_makes_the_cli_fail(capsys):
    assert main(["check", str(DATA / "models" / "reality.mdl")]) == 1
    out = capsys.readouterr().out
    assert "FAIL: stock grows without inflow" in out and "behaviour checks: 1 of 2 hold" in out


def test_a_check_against_the_baseline_reads_the_change_an_input_makes(decay_model, tmp_path):
    (tmp_path / "checks.toml").write_text(
        '[[check]]\nname = "a shorter stay leaves less"\nset = { "residence time[North]" = 5 }\n'
        '  [[check.expect]]\n  variable = "Amount"\n  where = { region = "North" }\n  stat = "final"\n'
        '  against = "baseline"\n  above = 23.6\n  below = 23.8\n'
        '  [[check.expect]]\n  variable = "Amount"\n  where = { region = "South" }\n  stat = "abs_max"\n'
        '  against = "baseline"\n  below = 0.0\n')
    (check,) = load_checks(tmp_path / "checks.toml", decay_model)
    result = run_check(decay_model, check)
    # Euler at TIME STEP 0.5 to year 10: 100 x 0.9^20 = 12.1577 against the baseline's 100 x 0.95^20 = 35.8486
    assert result.passed, str(result)
    assert "ok: final of 'Amount'[region=North] minus its baseline (no set or force) >= 23.6 and <= 23.8 " \
           "(found 23.6909)" in str(result)


def test_time_step_halving_is_reported_per_stock(decay_model):
    report = check_model(decay_model.path, behaviour=False, dt=True)
    (change,) = report.time_step
    assert change.stock == "Amount"
    # Euler's error for this decay is first order: halving the step moves the result by a few percent here
    assert 0.001 < change.change < 0.1
    assert "halving TIME STEP" in report.text()

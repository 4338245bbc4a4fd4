""".mdl mistakes in the modeller's language: the variable as written, the file and line, and what is wrong."""

import re

import pytest

import migsd
from migsd.checks import check_model
from migsd.cli import main
from migsd.engine.codegen import generate
from migsd.engine.compiler import compile_mdl
from migsd.errors import ModelError
from migsd.mdlsource import (SourceError, abstract_problems, check_source, definition_lines, entries,
                             lookup_problems, parse_abstract, structure_problems)

from .conftest import BAD, DATA

BAD_MDL = BAD / "mdl"
DECAY = DATA / "models" / "decay.mdl"

#: fixture -> the error loading it raises, literally (paths are shown relative to the working folder)
LOAD_ERRORS = {
    "undefined_name.mdl":
        "undefined_name.mdl:22: 'residence tme' is not defined (in the equation of 'outflow'). "
        "Did you mean 'residence time'?",
    "unknown_function.mdl":
        "unknown_function.mdl:34: 'loss efect' is neither a function pysd knows nor a lookup of the model "
        "(in the equation of 'total loss'). Did you mean 'loss effect'?",
    "missing_bar.mdl":
        "missing_bar.mdl:21: the definition of 'outflow' is not closed by '|': it runs on into 'residence time' "
        "at line 26; end it with '|' before line 26",
    "element_in_reference.mdl":
        "element_in_reference.mdl:34: 'Suoth' is not an element of Region (in a reference to 'outflow' in the "
        "equation of 'total loss'); Region has North, South. Did you mean 'South' or 'North'?",
    "element_in_definition.mdl":
        "element_in_definition.mdl:33: 'Suoth' is not a subscript element or range (in the definition of "
        "'residence time'). Did you mean 'South' or 'North'?",
    "unbalanced_bracket.mdl":
        "unbalanced_bracket.mdl:21: pysd cannot read the equation of 'outflow': its parser stops at character 40 of "
        "'(Amount[Region] / residence time[Region]' (unbalanced brackets, or an operator missing?)",
    "missing_subscript.mdl":
        "missing_subscript.mdl:34: 'Amount' is subscripted by [Region]; the equation of 'total loss' refers to it "
        "with no subscripts",
    "algebraic_loop.mdl":
        "algebraic_loop.mdl:33: simultaneous equations (an algebraic loop in the equations): 'total loss' "
        "(line 33) needs 'recovered loss' (line 39), which needs 'total loss'; a loop of equations needs a stock "
        "(INTEG) or a delay in it",
    "initial_loop.mdl":
        "initial_loop.mdl:8: simultaneous equations (an algebraic loop in the initial values): 'Amount' (line 8) "
        "needs 'outflow' (line 21), which needs 'Amount'; a stock's initial value cannot depend on the stock's "
        "own value",
}


@pytest.fixture
def in_bad_mdl(monkeypatch, tmp_path):
    """Run in the fixtures' folder (messages show paths relative to it), with a cache of this test's own."""
    monkeypatch.chdir(BAD_MDL)
    monkeypatch.setenv("MIGSD_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("fixture", sorted(LOAD_ERRORS))
def test_each_kind_of_mdl_mistake_fails_to_load_with_the_mdl_name_file_and_line(fixture, in_bad_mdl):
    with pytest.raises(ModelError) as caught:
        migsd.load_model(fixture)
    assert str(caught.value) == LOAD_ERRORS[fixture]
    assert isinstance(caught.value, SourceError)
    (problem,) = caught.value.problems
    assert str(caught.value).startswith(f"{fixture}:{problem.line}: ")


@pytest.mark.parametrize("fixture", sorted(LOAD_ERRORS))
def test_the_fixture_lines_are_where_the_mistake_is(fixture):
    """Each message's line holds the name it reports (or, for a loop, the definition of its first variable)."""
    text = (BAD_MDL / fixture).read_text(encoding="utf-8").splitlines()
    line = int(LOAD_ERRORS[fixture].split(":")[1])
    named = re.search(r"'([^']+)'", LOAD_ERRORS[fixture].split(": ", 1)[1]).group(1)
    assert named.lower() in text[line - 1].lower(), (line, text[line - 1])


def test_migsd_check_lists_each_mistake_and_exits_1(in_bad_mdl, capsys):
    for fixture, error in LOAD_ERRORS.items():
        assert main(["check", fixture, "--units-only"]) == 1, fixture
        out = capsys.readouterr().out
        line, message = re.match(r"[^:]+:(\d+): (.*)", error).groups()
        assert out.startswith(f"{fixture}: model text: 1 error(s)\n  {fixture}:{line}: error: '"), out
        assert out.split("': ", 1)[1].startswith(message), out
        assert "units and behaviour not checked" in out


def test_migsd_check_reports_a_lookup_whose_x_values_do_not_increase(in_bad_mdl, capsys):
    assert main(["check", "lookup_not_increasing.mdl", "--units-only"]) == 1
    assert capsys.readouterr().out == (
        "lookup_not_increasing.mdl: model text: 1 error(s)\n"
        "  lookup_not_increasing.mdl:40: error: 'loss effect': the x values of the lookup 'loss effect' do not "
        "increase: (5,1.5) is followed by (2,2) (x: 0, 5, 2, 10); pysd would sort the points and draw another curve\n"
        "lookup_not_increasing.mdl: units: 0 error(s), 0 warning(s)\n"
    )
    # the model itself still loads and runs: pysd reads it (with the points sorted)
    assert migsd.load_model("lookup_not_increasing.mdl").run(final_time=1)["total loss"].notnull().all()


def test_migsd_run_on_a_broken_mdl_prints_the_mdl_message_and_exits_2(in_bad_mdl, capsys):
    assert main(["run", "--model", "undefined_name.mdl", "--final-time", "1"]) == 2
    assert capsys.readouterr().err == f"migsd: error: {LOAD_ERRORS['undefined_name.mdl']}\n"


def test_all_mistakes_of_a_model_are_listed_not_only_the_first(tmp_path):
    text = (BAD_MDL / "undefined_name.mdl").read_text(encoding="utf-8").replace(
        "\tSUM(outflow[Region!])\n", "\tSUM(outflow[Region!]) + outflow[Nrth] + extra los\n")
    (tmp_path / "two.mdl").write_text(text, encoding="utf-8")
    problems = check_source(tmp_path / "two.mdl")
    assert [(p.line, p.variable) for p in problems] == [(22, "outflow"), (34, "total loss"), (34, "total loss")]
    assert "'extra los' is not defined" in problems[1].message + problems[2].message
    assert "'Nrth' is not an element of Region" in problems[1].message + problems[2].message


def test_an_algebraic_loop_is_named_by_the_engine_in_mdl_names():
    """The engine's own ordering (what a run would meet) names the loop as the .mdl does, not by identifier."""
    with pytest.raises(SourceError) as caught:
        generate(compile_mdl(BAD_MDL / "algebraic_loop.mdl"))
    message = str(caught.value)
    assert message.endswith(LOAD_ERRORS["algebraic_loop.mdl"].split(":", 1)[1])
    assert "total_loss" not in message and "recovered_loss" not in message


def test_a_variable_computed_from_itself_is_named_with_its_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGSD_CACHE_DIR", str(tmp_path / "cache"))
    text = DECAY.read_text(encoding="utf-8").replace("SUM(outflow[Region!]) + extra loss",
                                                     "SUM(outflow[Region!]) + 0.1 * total loss")
    (tmp_path / "self.mdl").write_text(text, encoding="utf-8")
    with pytest.raises(SourceError) as caught:
        migsd.load_model(tmp_path / "self.mdl")
    line = definition_lines(text)["total loss"][0]
    assert str(caught.value).endswith(
        f"self.mdl:{line}: 'total loss' is computed from itself (an algebraic loop in the equations); "
        "a loop of equations needs a stock (INTEG) or a delay in it")


def test_removing_any_bar_is_reported_at_the_definition_it_leaves_open():
    """Property: drop any one '|' of a valid model and the definition it closed is named, with its line."""
    text = DECAY.read_text(encoding="utf-8")
    equations = text.split("\\\\\\---///")[0]
    blocks = entries(text)
    assert structure_problems(text) == []
    bars = [i for i, char in enumerate(equations) if char == "|"]
    assert len(bars) == len(blocks)
    for bar, block, following in zip(bars, blocks, [*blocks[1:], None]):
        broken = text[:bar] + text[bar + 1:]
        (problem,) = structure_problems(broken)
        assert problem.line == block.line, (block.name, problem)
        assert problem.variable == block.name
        assert "is not closed by '|'" in problem.message
        if following is not None:  # and it names where the next one begins
            assert problem.message.endswith(f"at line {following.line}; end it with '|' before line {following.line}")


def test_definition_lines_follow_the_text():
    text = DECAY.read_text(encoding="utf-8").splitlines()
    lines = definition_lines("\n".join(text))
    for name, found in lines.items():
        for line in found:
            assert text[line - 1].lower().startswith(name.split()[0]), (name, line)
    assert lines["amount"] == [next(i for i, t in enumerate(text, 1) if t.startswith("Amount[Region]"))]


def test_quotes_and_bars_inside_a_quoted_name_and_odd_quotes_in_a_comment_are_text():
    text = ('{UTF-8}\n"a|b~c" = 1\n\t~\tDmnl\n\t~\tA "quoted" name with a bar; a comment with "three quotes.\n\t|\n\n'
            'y = "a|b~c" * 2\n\t~\tDmnl\n\t~\t\t|\n')
    assert [(e.name, e.line, e.end, e.closed) for e in entries(text)] == [('"a|b~c"', 2, 5, True), ("y", 7, 9, True)]
    assert structure_problems(text) == []


def test_a_definition_left_open_at_the_sketch_is_reported():
    text = DECAY.read_text(encoding="utf-8")
    last = text.rindex("|", 0, text.index("\\\\\\---///"))
    (problem,) = structure_problems(text[:last] + text[last + 1:])
    assert problem.variable == "TIME STEP"
    assert re.fullmatch(r"the definition of 'TIME STEP' is not closed by '\|' \(its text ends at line \d+, where the "
                        r"sketch or the file begins\); end it with '\|'", problem.message)


def test_lookups_with_increasing_x_pass_and_with_lookup_tables_are_read_too():
    text = ("{UTF-8}\nx = WITH LOOKUP(MAX(Time, 1), ([(0,0)-(2,2)],(0,0),(2,1),(1,2)))\n\t~\tDmnl\n\t~\t\t|\n"
            "t(\n\t(0,0),(1,1),(2,4))\n\t~\tDmnl\n\t~\t\t|\n")
    (problem,) = lookup_problems(text)
    assert (problem.variable, problem.line) == ("x", 2)
    assert "(2,1) is followed by (1,2) (x: 0, 2, 1)" in problem.message


def test_the_shipped_model_has_no_text_problems():
    path = migsd.load_model().path
    text = path.read_text(encoding="utf-8")
    assert structure_problems(text) == [] and lookup_problems(text) == []
    assert abstract_problems(parse_abstract(path), text, path.parent) == []


def test_a_cached_translation_is_not_checked_again(tmp_path, monkeypatch):
    """The checks run when a .mdl is translated, once per content; a load from the cache skips them."""
    import migsd.model

    monkeypatch.setenv("MIGSD_CACHE_DIR", str(tmp_path / "cache"))
    migsd.load_model(DECAY)

    def fail(*args):
        raise AssertionError("checked again")

    monkeypatch.setattr(migsd.model, "abstract_problems", fail)
    monkeypatch.setattr(migsd.model, "structure_problems", fail)
    assert migsd.load_model(DECAY).path == DECAY.resolve()
    (tmp_path / "edited.mdl").write_text(DECAY.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="checked again"):
        migsd.load_model(tmp_path / "edited.mdl")


@pytest.mark.slow
def test_no_sdxorg_test_model_has_a_text_problem_but_its_one_unsorted_lookup():
    """No false alarms: over every SDXorg test-model pysd reads, only a real lookup with falling x is reported."""
    from migsd.engine.conformance import DEFAULT_ROOT

    if not DEFAULT_ROOT.is_dir():
        pytest.skip(f"no SDXorg test-models at {DEFAULT_ROOT}")
    found = {}
    for path in sorted(DEFAULT_ROOT.rglob("*.mdl")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if structure_problems(text):
            found[path.name] = "structure"
            continue
        abstract = parse_abstract(path)
        kinds = {p.kind for p in abstract_problems(abstract, text, path.parent) + lookup_problems(text)}
        if kinds:
            found[path.name] = ",".join(sorted(kinds))
    assert found == {"test_subscripted_lookups.mdl": "lookup"}


def test_a_construct_the_engine_refuses_is_named_with_its_file_and_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGSD_CACHE_DIR", str(tmp_path / "cache"))
    model = migsd.load_model(DATA / "models" / "active_initial.mdl")
    with pytest.warns(RuntimeWarning) as caught:
        model.run(final_time=1)
    assert str(caught[0].message).startswith(
        "active_initial.mdl:9: 'inflow' uses the function ACTIVE_INITIAL, which the batched engine does not support; "
        "running it with pysd instead")

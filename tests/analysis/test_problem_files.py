"""Bad sensitivity problem files (tests/data/sensitivity/bad/): each refused with the file, the key and a hint."""

from pathlib import Path

import pytest

from migsd.analysis.sensitivity import load_problem
from migsd.errors import ScenarioError

from ..conftest import DATA

BAD = DATA / "sensitivity" / "bad"

MESSAGES = {
    "misspelt_scenario": "scenarios: no scenario 'status_qou' in scenarios/ (known: aid_to_prevent_migration, "
                         "externalization, global_compact, iom_south_south, iom_south_south_unconditional, "
                         "iom_un_integrated, northern_natalism_automation, open_borders, status_quo). "
                         "Did you mean 'status_quo'?",
    "duplicated_parameter": "[[parameter]] 2 samples 'enforcement push[North]', which [[parameter]] 1 already "
                            "samples; each value is sampled by one [[parameter]] table",
    "unknown_key": "unknown key(s) ['sample']; valid keys: title, description, method, samples, seed, scenarios, "
                   "outputs, final_time, levels, parameter. Did you mean 'samples'?",
    "not_utf8": "not UTF-8 text (byte 0xe9 at offset 19); a problem file is TOML text saved as UTF-8",
}


@pytest.mark.parametrize("stem", sorted(MESSAGES))
def test_a_bad_problem_file_is_refused_with_its_exact_message(model, stem):
    path = BAD / f"{stem}.toml"
    with pytest.raises(ScenarioError) as caught:
        load_problem(path, model)
    assert str(caught.value) == f"{path}: {MESSAGES[stem]}"


def test_every_bad_problem_fixture_has_a_message():
    assert {p.stem for p in Path(BAD).glob("*.toml")} == set(MESSAGES)


def test_elements_of_one_name_sampled_apart_are_accepted(model, tmp_path):
    path = tmp_path / "apart.toml"
    path.write_text('method = "lhs"\nsamples = 4\noutputs = ["Restrictiveness"]\n'
                    '[[parameter]]\nname = "enforcement push"\nelements = ["North"]\nlower = 0.1\nupper = 0.3\n'
                    '[[parameter]]\nname = "enforcement push"\nelements = ["Gulf"]\nlower = 0.1\nupper = 0.3\n')
    assert load_problem(path, model).labels == ["enforcement push[North]", "enforcement push[Gulf]"]

"""A calibration becomes the default only when promoted; every output names the files it came from."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

import migsd
from migsd.calibration.fit import CURRENT, current, latest, promote, read_parameters, write_parameters
from migsd.errors import DataError
from migsd.paths import PARAMETERS_DIR


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def two_versions(folder, promoted="calibrated_v1.csv"):
    priors = [migsd.calibration.fit.Prior("material weight", 1, 5)]
    for version, value in ((1, 2.0), (2, 4.0)):
        write_parameters(folder / f"calibrated_v{version}.csv", priors, np.array([value]), np.array([[value]]))
    if promoted:
        (folder / CURRENT).write_text(promoted + "\n")
    return folder


def test_a_newer_calibration_is_not_the_default_until_promoted(tmp_path):
    folder = two_versions(tmp_path)
    assert latest(folder) == folder / "calibrated_v2.csv"
    assert current(folder) == folder / "calibrated_v1.csv"
    assert promote(folder / "calibrated_v2.csv", folder) == (folder / "calibrated_v2.csv").resolve()
    assert (folder / CURRENT).read_text() == "calibrated_v2.csv\n"
    assert current(folder) == folder / "calibrated_v2.csv"


def test_migsd_promote_names_the_file_and_what_it_replaces(tmp_path):
    folder = two_versions(tmp_path)
    done = subprocess.run([sys.executable, "-m", "migsd.cli", "promote", str(folder / "calibrated_v2.csv"),
                           "--directory", str(folder)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("promoted calibrated_v2.csv: the default calibration of every run from now on "
                           "(was calibrated_v1.csv)\n")
    missing = subprocess.run([sys.executable, "-m", "migsd.cli", "promote", "calibrated_v9.csv",
                              "--directory", str(folder)], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr == "migsd: error: cannot promote calibrated_v9.csv: no such file\n"
    assert current(folder) == folder / "calibrated_v2.csv"


def test_a_missing_or_wrong_current_file_is_an_error_naming_it(tmp_path):
    folder = two_versions(tmp_path, promoted=None)
    with pytest.raises(DataError, match=rf"^{folder / CURRENT} is missing: no calibration is promoted among "
                                        r"calibrated_v1.csv, calibrated_v2.csv; promote one with 'migsd promote "):
        current(folder)
    (folder / CURRENT).write_text("calibrated_v3.csv\n")
    with pytest.raises(DataError, match=r"names 'calibrated_v3.csv', which is not a file in .*/; 'migsd promote "
                                        r"FILE' names one of: calibrated_v1.csv, calibrated_v2.csv"):
        current(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert current(empty) is None  # nothing ever calibrated: the .mdl's own values


def test_a_file_outside_the_parameters_folder_is_not_promoted(tmp_path):
    folder = tmp_path / "parameters"
    folder.mkdir()
    two_versions(folder)
    elsewhere = tmp_path / "mine.csv"
    elsewhere.write_text((folder / "calibrated_v2.csv").read_text())
    with pytest.raises(DataError, match=r"cannot promote .*mine.csv: a promoted file lives in parameters/ beside "
                                        r"CURRENT \(copy it there first\)"):
        promote(elsewhere, folder)
    assert current(folder) == folder / "calibrated_v1.csv"


def test_a_trial_calibration_written_beside_the_shipped_one_does_not_change_load_model():
    promoted = current()
    assert promoted is not None and (PARAMETERS_DIR / CURRENT).read_text().strip() == promoted.name
    trial = PARAMETERS_DIR / "calibrated_v999.csv"
    frame = read_parameters(promoted)
    try:
        (frame * 1.5).to_csv(trial)
        assert latest() == trial  # what load_model() used to pick up
        model = migsd.load_model()
        assert model.calibration == promoted.resolve()
        ds = model.run(scenario="status_quo", final_time=1991, return_columns=["emigration propensity multiplier"])
        best = frame.loc["best", "emigration propensity multiplier"]
        assert float(ds["emigration propensity multiplier"]) == pytest.approx(best)
    finally:
        trial.unlink(missing_ok=True)


def test_a_run_records_the_model_calibration_and_scenario_files_with_their_digests(model):
    ds = model.run(scenario="status_quo", final_time=1991, return_columns=["Restrictiveness"])
    scenario = migsd.paths.SCENARIOS_DIR / "status_quo.toml"
    assert ds.attrs["model_file"] == "models/migsd.mdl" and ds.attrs["model_sha256"] == sha(migsd.paths.DEFAULT_MODEL)
    assert ds.attrs["calibration_file"] == f"calibration/parameters/{current().name}"
    assert ds.attrs["calibration_sha256"] == sha(current())
    assert ds.attrs["scenario_sha256"] == f"models/scenarios/status_quo.toml={sha(scenario)}"
    both = migsd.run_scenarios(["status_quo", "open_borders"], model, final_time=1991, progress=False,
                               return_columns=["Restrictiveness"])
    assert both.attrs["calibration_sha256"] == sha(current())
    assert both.attrs["scenario_sha256"].split("; ")[1] == (
        f"models/scenarios/open_borders.toml={sha(migsd.paths.SCENARIOS_DIR / 'open_borders.toml')}")
    batch = model.run_batch(None, scenario=["status_quo", "open_borders"], final_time=1991,
                            return_columns=["Restrictiveness"])
    assert batch.attrs["scenario_sha256"] == both.attrs["scenario_sha256"]
    assert batch.attrs["calibration_file"] == ds.attrs["calibration_file"]


def test_a_model_without_calibration_says_so(decay_model):
    ds = decay_model.run(final_time=1)
    assert ds.attrs["calibration_file"] == "none" and ds.attrs["calibration_sha256"] == ""


def test_a_scenario_made_in_memory_says_it_has_no_file(model, tmp_path):
    from migsd.scenarios import Scenario

    mine = Scenario(name="mine", title="made on the page", description="", path=tmp_path / "mine.toml",
                    parameters={"IOM funding": 1e9})
    ds = model.run(scenario=mine, final_time=1991, return_columns=["Restrictiveness"])
    assert ds.attrs["scenario_sha256"] == "mine=not read from a file"

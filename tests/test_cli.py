"""The command line: clear output, clear errors, no tracebacks."""

import subprocess
import sys

import xarray as xr


def migsd(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "migsd.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_scenarios_lists_names_with_titles():
    result = migsd("scenarios")
    assert result.returncode == 0
    assert "iom_south_south  " in result.stdout and "Open borders" in result.stdout


def test_params_lists_constants_with_units_and_defaults():
    result = migsd("params", "--filter", "IOM funding")
    assert result.returncode == 0
    assert "IOM redistribution" in result.stdout and "$/Year" in result.stdout


def test_unknown_scenario_is_one_clear_line_without_traceback():
    result = migsd("run", "--scenario", "status_qou", "--final-time", "1991")
    assert result.returncode == 2
    assert result.stderr.startswith("migsd: error: no scenario 'status_qou'")
    assert "Did you mean 'status_quo'" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_set_value_is_refused():
    result = migsd("run", "--set", "IOM funding=lots", "--final-time", "1991")
    assert result.returncode == 2 and "'lots' is not a number" in result.stderr


def test_run_writes_netcdf_and_prints_the_yield_year(tmp_path):
    out = tmp_path / "run.nc"
    result = migsd("run", "--scenario", "status_quo", "--final-time", "2021", "--time-step", "0.5",
                   "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "status_quo: Northern restrictiveness yields in never (within the run)" in result.stdout
    with xr.open_dataset(out) as ds:
        assert ds["Restrictiveness"].dims == ("scenario", "time", "region")
    again = migsd("run", "--final-time", "2021", "--out", str(out), "--quiet")
    assert again.returncode == 2 and "exists; add --overwrite" in again.stderr


def test_every_command_has_help():
    for command in ("run", "scenarios", "params", "data", "sketch"):
        result = migsd(command, "--help")
        assert result.returncode == 0 and "usage: migsd" in result.stdout


def test_a_copied_and_edited_scenario_file_runs(tmp_path):
    from migsd.scenarios import scenario_path

    mine = tmp_path / "my_iom.toml"
    text = scenario_path("iom_south_south").read_text().replace("1e10", "2e10")
    mine.write_text(text)
    result = migsd("run", "--scenario", str(mine), "--final-time", "1991", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("my_iom: done")


def test_a_port_in_use_is_a_one_line_error():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = migsd("explore", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr == (f"migsd: error: --port {port}: 127.0.0.1:{port} is already in use (another migsd "
                             "explore?); choose another with --port\n")


def test_regions_writes_a_model_folder_and_lists_each_region_with_its_parent(tmp_path):
    from migsd.paths import CALIBRATION_DIR, DEFAULT_MODEL

    result = migsd("regions", str(CALIBRATION_DIR / "regions.csv"), "--out", str(tmp_path / "model"), "--no-check")
    assert result.returncode == 0, result.stderr
    assert "4 regions" in result.stdout and "SouthUpper       constants from SouthUpper" in result.stdout
    assert (tmp_path / "model" / "migsd.mdl").read_bytes() == DEFAULT_MODEL.read_bytes()


def test_regions_refuses_a_bad_mapping_in_one_line(tmp_path):
    from pathlib import Path

    bad = Path(__file__).parent / "data" / "bad" / "regions" / "country_in_two_regions.csv"
    result = migsd("regions", str(bad), "--out", str(tmp_path / "model"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"migsd: error: {bad}: row 240: FRA is already mapped to North at row 72")
    assert not (tmp_path / "model").exists()

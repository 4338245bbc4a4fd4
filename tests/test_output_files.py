"""Output files: checked before the run, never into a folder that is not there, never half written."""

import resource
import signal
import subprocess
import sys

import pytest

import migsd
from migsd.errors import MigsdError, ModelError
from migsd.outputs import to_netcdf


def migsd_cli(*args, **options):
    return subprocess.run([sys.executable, "-m", "migsd.cli", *args], capture_output=True, text=True, **options)


def test_plot_is_not_overwritten_without_overwrite_and_nothing_runs(tmp_path):
    plot = tmp_path / "headline.png"
    plot.write_bytes(b"an earlier figure")
    result = migsd_cli("run", "--final-time", "1991", "--plot", str(plot), "--quiet")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"migsd: error: {plot} exists; add --overwrite to replace it\n"
    assert plot.read_bytes() == b"an earlier figure"
    again = migsd_cli("run", "--final-time", "1991", "--plot", str(plot), "--overwrite", "--quiet")
    assert again.returncode == 0, again.stderr
    assert plot.read_bytes().startswith(b"\x89PNG") and not list(tmp_path.glob("*.partial"))


def test_out_into_a_missing_folder_is_an_error_not_a_new_folder(tmp_path):
    out = tmp_path / "typo" / "run.nc"
    result = migsd_cli("run", "--final-time", "1991", "--out", str(out), "--quiet")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"migsd: error: --out {out}: the folder {out.parent} does not exist (migsd creates no "
                             "folders); create it or choose another\n")
    assert not out.parent.exists()


def test_an_existing_folder_as_out_is_refused_before_the_run(tmp_path):
    result = migsd_cli("run", "--final-time", "1991", "--out", str(tmp_path), "--quiet")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"migsd: error: --out {tmp_path}: is a folder; --out takes a file name such as "
                             f"{tmp_path / 'run.nc'}\n")


def _small_files():
    # a disk that fills after 4 KiB: writes beyond it fail with EFBIG instead of killing the process
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_a_write_that_fails_removes_its_partial_file_and_says_why(tmp_path):
    out = tmp_path / "run.nc"
    result = migsd_cli("run", "--final-time", "1991", "--out", str(out), "--quiet", preexec_fn=_small_files)
    assert result.returncode == 2
    assert result.stderr.startswith(f"migsd: error: cannot write {out}: ")
    assert result.stderr.endswith("; nothing was written\n")
    assert list(tmp_path.iterdir()) == [], "a partial file was left behind"


def test_a_dataset_netcdf_cannot_hold_is_not_left_half_written(short_run, tmp_path):
    bad = short_run[["Restrictiveness"]].assign_attrs(unwritable={"a": 1})  # netCDF attrs are text or numbers
    with pytest.raises(MigsdError, match=rf"^cannot write {tmp_path / 'bad.nc'}: .*; nothing was written$"):
        to_netcdf(bad, tmp_path / "bad.nc")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, message", [
    ({"time_step": 0.3}, "time_step 0.3 does not divide SAVEPER 1: saved values would fall between steps; "
                         "choose a time step that divides it, e.g. 0.25"),
    ({"time_step": 200}, "time_step 200 does not divide the horizon 1990-2100 (110 years): the run would not end "
                         "at FINAL TIME; choose a time step that divides it, e.g. 110"),
    ({"time_step": 0.25, "final_time": 2000.1}, "time_step 0.25 does not divide the horizon 1990-2000.1 (10.1 years)"
                                                ": the run would not end at FINAL TIME; choose a time step that "
                                                "divides it, e.g. 0.246341"),
    ({"saveper": 0.3, "final_time": 1992}, "time_step 0.125 does not divide SAVEPER 0.3: saved values would fall "
                                           "between steps; choose a time step that divides it, e.g. 0.1"),
])
def test_a_time_step_that_does_not_divide_saveper_or_the_horizon_is_refused(model, options, message):
    with pytest.raises(ModelError) as caught:
        model.run(return_columns=["Restrictiveness"], **options)
    assert str(caught.value) == message


def test_a_time_step_that_divides_both_saves_what_the_attrs_say(model):
    ds = model.run(return_columns=["Restrictiveness"], time_step=0.5, final_time=1995)
    assert ds.attrs["time_step"] == 0.5 and ds.attrs["saveper"] == 1
    assert ds["time"].values.tolist() == [1990.0, 1991.0, 1992.0, 1993.0, 1994.0, 1995.0]


def test_time_step_refused_on_the_command_line_in_one_line():
    result = migsd_cli("run", "--time-step", "0.3", "--quiet")
    assert result.returncode == 2
    assert result.stderr == ("migsd: error: time_step 0.3 does not divide SAVEPER 1: saved values would fall between "
                             "steps; choose a time step that divides it, e.g. 0.25\n")


def test_the_library_writer_refuses_a_missing_folder_too(short_run, tmp_path):
    with pytest.raises(MigsdError, match="does not exist"):
        migsd.to_netcdf(short_run, tmp_path / "nowhere" / "run.nc")
    assert not (tmp_path / "nowhere").exists()

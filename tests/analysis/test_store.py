"""A sweep store knows what it holds: input digests, chunk digests, one writer at a time."""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

import migsd
from migsd.analysis.sensitivity import load_problem, sample
from migsd.analysis.sweep import check_store, evaluate, open_store, open_verified, store_lock
from migsd.errors import StoreError

from ..conftest import DATA
from .sweeps import kill_once_partly_done


def cli(*args):
    return subprocess.run([sys.executable, "-m", "migsd.cli", *args], capture_output=True, text=True)


@pytest.fixture()
def ishigami_copy(tmp_path):
    """The Ishigami model and problem copied where a test may edit them."""
    shutil.copy(DATA / "models" / "ishigami.mdl", tmp_path / "ishigami.mdl")
    (tmp_path / "ishigami.toml").write_text(
        (DATA / "sensitivity" / "ishigami.toml").read_text().replace("samples = 2048", "samples = 64"))
    return tmp_path / "ishigami.mdl", tmp_path / "ishigami.toml"


def small_sweep(mdl, toml, store, chunk_size=64):
    model = migsd.load_model(mdl)
    problem = load_problem(toml, model)
    evaluate(problem, sample(problem), model=model, store=store, chunk_size=chunk_size, progress=False)
    return model, problem


def test_a_store_records_the_digests_of_the_files_it_ran(ishigami_copy, tmp_path):
    mdl, toml = ishigami_copy
    store = tmp_path / "s.zarr"
    small_sweep(mdl, toml, store)
    stored = open_store(store)
    inputs = json.loads(stored.attrs["inputs"])
    assert inputs["model file"][1] == hashlib.sha256(mdl.read_bytes()).hexdigest() == stored.attrs["model_sha256"]
    assert inputs["problem file"][1] == hashlib.sha256(toml.read_bytes()).hexdigest()
    assert inputs["calibration file"] == ["none", ""] and stored.attrs["calibration_file"] == "none"
    state = check_store(store)
    assert state.complete and state.verified.all()
    assert not (tmp_path / "s.zarr.lock").exists(), "the writer's lock outlived the sweep"


def test_the_shipped_model_s_store_records_calibration_and_scenarios(model, tmp_path):
    problem = load_problem("restrictionism", model, samples=2)
    problem.final_time, problem.outputs = 1992, ["Restrictiveness"]
    evaluate(problem, sample(problem), model=model, store=tmp_path / "r.zarr", chunk_size=64, progress=False)
    inputs = json.loads(open_store(tmp_path / "r.zarr").attrs["inputs"])
    assert inputs["calibration file"] == [
        "calibration/parameters/" + model.calibration.name,
        hashlib.sha256(model.calibration.read_bytes()).hexdigest()]
    for name in problem.scenarios:
        path, digest = inputs[f"scenario file of '{name}'"]
        assert path == f"models/scenarios/{name}.toml"
        assert digest == hashlib.sha256((migsd.paths.SCENARIOS_DIR / f"{name}.toml").read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_killed_sweep_resumed_after_the_model_changed_is_refused_and_analyze_refuses_it(ishigami_copy, tmp_path):
    mdl, toml = ishigami_copy
    toml.write_text(toml.read_text().replace("samples = 64", "samples = 2048"))
    store = tmp_path / "killed.zarr"
    command = [sys.executable, "-m", "migsd.cli", "sweep", str(toml), "--model", str(mdl), "--out", str(store),
               "--chunk", "64", "--quiet"]
    killed = kill_once_partly_done(command, store)
    status = open_store(store)["status"].values
    assert 0 < np.sum(status == 1) < status.size, "the sweep finished or never started before the kill"

    analyzed = cli("analyze", str(store), "--model", str(mdl), "--out", str(tmp_path / "a"))
    assert analyzed.returncode == 2
    first_pending = int(np.argmax(np.isnan(status[0])))
    assert analyzed.stderr.startswith(f"migsd: error: {store} is incomplete: none: runs {first_pending}-")
    assert "pending (never computed)" in analyzed.stderr and "--allow-incomplete" in analyzed.stderr
    assert not (tmp_path / "a").exists()

    before = hashlib.sha256(mdl.read_bytes()).hexdigest()
    mdl.write_text(mdl.read_text().replace("7 * SIN(x2)", "7.5 * SIN(x2)"))
    after = hashlib.sha256(mdl.read_bytes()).hexdigest()
    resumed = cli(*command[3:], "--resume")
    assert resumed.returncode == 2, resumed.stdout
    assert resumed.stderr == (
        f"migsd: warning: {store}.lock: reclaimed a stale lock of pid {killed} on {socket.gethostname()} "
        "(no such process; that sweep was killed)\n"
        f"migsd: error: {store} was run from other inputs; --resume would mix two sweeps in one store: model file "
        f"ishigami.mdl changed (sha256 {before[:12]} stored, {after[:12]} now). Start a new store (another --out)\n")
    assert np.array_equal(open_store(store)["status"].values, status, equal_nan=True), "the refused resume wrote"


def test_a_missing_chunk_file_is_found_refused_and_recomputed_on_resume(ishigami_copy, tmp_path):
    mdl, toml = ishigami_copy
    store = tmp_path / "s.zarr"
    model, problem = small_sweep(mdl, toml, store, chunk_size=64)
    whole = open_store(store).load()
    (store / "y" / "0.2.0").unlink()  # runs 128-191 of the output (scenario, run, time chunks); their status still says done
    with pytest.raises(StoreError, match=r"none: runs 128-191 do not match the digest written with them "
                                         r"\(a chunk file missing or altered\)"):
        open_verified(store)
    with pytest.warns(RuntimeWarning, match=r"INCOMPLETE STORE .*runs 128-191 do not match"):
        results, state = open_verified(store, allow_incomplete=True)
    assert np.isnan(results["status"].values[0, 128:192]).all() and (results["status"].values[0, :128] == 1).all()

    allowed = cli("analyze", str(store), "--model", str(mdl), "--out", str(tmp_path / "a"), "--allow-incomplete")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stderr.startswith(f"migsd: WARNING: INCOMPLETE STORE {store}: none: runs 128-191 do not match")

    evaluate(problem, sample(problem), model=model, store=store, chunk_size=64, resume=True, progress=False)
    assert check_store(store).complete
    xr.testing.assert_identical(open_store(store).load()["y"], whole["y"])


def test_a_second_writer_is_refused_while_the_first_holds_the_store(ishigami_copy, tmp_path):
    mdl, toml = ishigami_copy
    store = tmp_path / "s.zarr"
    with store_lock(store):
        second = cli("sweep", str(toml), "--model", str(mdl), "--out", str(store), "--quiet")
    assert second.returncode == 2
    assert second.stderr.startswith(f"migsd: error: {store} is being written by pid {os.getpid()} on ")
    assert f"if that process is gone remove {store}.lock" in second.stderr
    assert not store.exists() and not (tmp_path / "s.zarr.lock").exists()


def test_the_lock_of_a_killed_writer_is_reclaimed_with_a_warning(ishigami_copy, tmp_path):
    mdl, toml = ishigami_copy
    store = tmp_path / "s.zarr"
    with subprocess.Popen([sys.executable, "-c",
                           "import time; from migsd.analysis.sweep import store_lock\n"
                           f"with store_lock({str(store)!r}):\n    print('held', flush=True); time.sleep(60)"],
                          stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert (tmp_path / "s.zarr.lock").exists()
    with pytest.warns(RuntimeWarning, match=rf"reclaimed a stale lock of pid {holder.pid} on .* \(no such process"):
        small_sweep(mdl, toml, store)
    assert check_store(store).complete and not (tmp_path / "s.zarr.lock").exists()


def _descendants(pid):
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        try:
            with open(f"/proc/{current}/task/{current}/children") as stream:
                children = [int(c) for c in stream.read().split()]
        except FileNotFoundError:
            continue
        found += children
        queue += children
    return found


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads process trees from /proc (Linux)")
def test_the_workers_of_a_killed_processes_sweep_exit_with_it(tmp_path):
    store = tmp_path / "p.zarr"
    command = [sys.executable, "-m", "migsd.cli", "sweep", "restrictionism", "--n", "8", "--out", str(store),
               "--chunk", "4", "--evaluator", "processes", "--workers", "2", "--quiet"]
    with subprocess.Popen(command) as sweep:
        workers = []
        deadline = time.time() + 120
        while time.time() < deadline and sweep.poll() is None:
            workers = _descendants(sweep.pid)
            if len(workers) >= 2 and (store / "status").exists():
                break
            time.sleep(0.1)
        assert sweep.poll() is None and len(workers) >= 2, "the sweep ended or never started its workers"
        sweep.kill()
        sweep.wait()
    deadline = time.time() + 20
    alive = workers
    while alive and time.time() < deadline:
        alive = [w for w in workers if _running(w)]
        time.sleep(0.1)
    assert alive == [], f"worker processes {alive} outlived the killed sweep"


def _running(pid):
    """Whether ``pid`` exists and is not a zombie (dead, waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False

"""Helpers the sweep tests share."""

import subprocess
import time
import warnings

import numpy as np
import xarray as xr


def kill_once_partly_done(command, store):
    """Start a sweep command and kill it once some, but not all, of its chunks are stored; return its pid."""
    process = subprocess.Popen(command)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if (store / "status").exists():
                try:
                    with warnings.catch_warnings():  # the manifest's jsonl files, which zarr calls unknown
                        warnings.filterwarnings("ignore", message=r"Object at \w+\.jsonl is not recognized")
                        status = xr.open_zarr(store, consolidated=False)["status"].values
                # read while the sweep writes (zarr also warns of a file half written): retry
                except (OSError, ValueError, KeyError, RuntimeError, Warning):
                    status = None
                if status is not None and 0 < np.sum(status == 1) < status.size:
                    break
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    return process.pid

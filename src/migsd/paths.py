"""Where the repository's folders are; every module takes them from here (nothing imports upward)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"
DEFAULT_MODEL = MODELS_DIR / "migsd.mdl"
SCENARIOS_DIR = MODELS_DIR / "scenarios"
SENSITIVITY_DIR = MODELS_DIR / "sensitivity"
DEFAULT_PROBLEM = SENSITIVITY_DIR / "restrictionism.toml"
CALIBRATION_DIR = REPO_ROOT / "calibration"
PARAMETERS_DIR = CALIBRATION_DIR / "parameters"
#: The read-only folder of shared material that sits beside the repository.
SHARED_DIR = REPO_ROOT.parent / "shared"


def repo_relative(path: str | os.PathLike) -> str:
    """``path`` relative to the repository if it lies inside it, else its file name."""
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return Path(path).name

"""Checks of a model: units of every equation, behaviour checks (Reality Checks), the time-step check."""

from .report import CheckReport, check_model

__all__ = ["CheckReport", "check_model"]

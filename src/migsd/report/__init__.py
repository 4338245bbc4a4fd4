"""The answer: ``migsd report``, its numbers (``numbers.nc``) and its text."""

from .build import REPORT_DIR, build

__all__ = ["REPORT_DIR", "build"]

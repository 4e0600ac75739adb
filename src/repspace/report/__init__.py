"""Readable HTML reports."""

from repspace.report.html import Report

__all__ = ["Report"]

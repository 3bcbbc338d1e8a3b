"""Data access: plain functions taking keyword arguments and an explicit session."""

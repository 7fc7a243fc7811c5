"""Widgets of a planning session: the scenario form, result tables, plots, comparison, run status."""

"""Screens of the TUI: the scenario picker, the planning session, and small dialogs."""

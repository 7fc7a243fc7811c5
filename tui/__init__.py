"""The fleet-planner terminal UI: interactive planning sessions (``planner tui``).

A session opens a scenario (bundled or local), edits it in a form validated as you type, runs
``simulate`` and ``plan`` in background workers, shows the results as tables and terminal plots,
compares a pinned result with a rerun, and saves the scenario or exports a plan report.

Layout: :mod:`tui.app` (the App), :mod:`tui.screens` (picker, session, dialogs),
:mod:`tui.widgets` (form, results, plots, compare, status bar), and plain-Python helpers that the
widgets use (:mod:`tui.paths`, :mod:`tui.editing`, :mod:`tui.runs`).  Nothing
outside this package imports it except the lazily imported ``planner tui`` command.
"""

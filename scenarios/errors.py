"""The project's one error family.

Every failure that a user can cause (a bad scenario file, a model that does not fit on its GPUs, an
unreadable measurement file) raises a subclass of :class:`FleetPlannerError`.  The command-line tools
catch exactly this class and print its message; anything else is a bug and is allowed to show a
traceback.
"""

from __future__ import annotations


class FleetPlannerError(Exception):
    """Base class of all errors fleet-planner reports to its users."""


def yaml_problem(exc: Exception) -> str:
    """A PyYAML parse error in one line: ``line L, column C: invalid YAML: problem``."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(parse)"
    problem = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
    return f"{where}: invalid YAML: {problem}"


class ScenarioError(FleetPlannerError):
    """A scenario (or a file it references) is invalid.

    ``problems`` holds one line per problem, each formatted as ``file: dotted.path: message``.
    """

    def __init__(self, problems: list[str]) -> None:
        if not problems:
            raise ValueError("problems(=[]) must name at least one problem")
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

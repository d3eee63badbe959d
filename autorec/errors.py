"""One error hierarchy: everything a user can fix derives from AutorecError.

The CLI prints an AutorecError as one line and exits with code 2; anything else is a bug and keeps
its traceback.
"""


class AutorecError(Exception):
    """Base of every error autorec raises on purpose."""


class ConfigError(AutorecError):
    """A config key that does not exist, a value out of range, a malformed config file."""


class UnknownNameError(AutorecError):
    """A model, dataset, task, space or proposer name that is not registered."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]):
        self.kind, self.name, self.known = kind, name, list(known)
        super().__init__(f"unknown {kind} '{name}'; known: {', '.join(sorted(self.known))}")


class DatasetError(AutorecError):
    """A dataset that is missing, malformed, or lacks a column its schema names."""


class TrainingError(AutorecError):
    """Training that cannot go on: a NaN loss, an empty split."""


def describe_validation_error(error, whole: str = "value") -> str:
    """A pydantic ValidationError as one line: 'field: problem; other: problem'.

    `whole` names the thing when an error is about the object itself rather than one field.
    """
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or whole
        problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)

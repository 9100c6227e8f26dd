"""Exceptions that carry a one-line, actionable message for the user."""


class ShortbiasError(Exception):
    """Base class: the CLI prints these as one line and exits with status 2."""


class DataNotFoundError(ShortbiasError):
    """A data set is missing and could not be downloaded."""


class DivergenceError(ShortbiasError):
    """A training run produced a NaN or infinite loss."""

    def __init__(self, step, value, what="loss"):
        self.step = step
        self.value = value
        super().__init__(f"{what} became {value} at step {step}: the run diverged")

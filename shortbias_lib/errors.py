"""Exceptions that carry a one-line, actionable message for the user."""


class ShortbiasError(Exception):
    """Base class: the CLI prints these as one line and exits with status 2."""


class DataError(ShortbiasError):
    """A data set is missing, unreadable or not the data it should be."""


class DataNotFoundError(DataError):
    """A data set is missing and could not be downloaded."""


class ResultFileError(ShortbiasError):
    """A result file is unreadable, corrupt, or does not hold what its experiment writes."""


class ResultsFolderError(ShortbiasError):
    """The results folder cannot be created or written to."""


class ResultLockedError(ShortbiasError):
    """Another run is computing the same result file right now."""


class TimeBudgetSpent(ShortbiasError):
    """A run stopped at a checkpoint because its time budget (``--max-minutes``,
    :func:`~shortbias_lib.runs.time_budget`) was spent; the same command resumes it."""


class DivergenceError(ShortbiasError):
    """A training run produced a NaN or infinite loss."""

    def __init__(self, step, value, what="loss"):
        self.step = step
        self.value = value
        super().__init__(f"{what} became {value} at step {step}: the run diverged")

"""The errors `tdm-train` reports to its user as one line, without a traceback."""

from __future__ import annotations


class TrainingError(ValueError):
    """A dataset folder, run folder or checkpoint that does not fit the config.

    The message says what is wrong and what to do. A ValueError, so code that
    catches ValueError still catches it; `tdm-train` prints it and exits 2,
    while any other exception keeps its traceback.
    """

"""The errors a user can fix, and the ones that stop a run: the bottom layer, importing nothing from selfcorrect.

Each is raised where it arises (and importable from there too: `selfcorrect.configs.RecipeError`, ...); the command
layer (`selfcorrect.exit_codes.run_reporting_errors`) maps them to one line on stderr and an exit code: 2 for a bad recipe,
data set, model or run folder, 1 for a run stopped by a guard.
"""

from __future__ import annotations


class RecipeError(ValueError):
    """A recipe (YAML file or command-line override) is invalid; the message names the field and the fix."""


class DataError(ValueError):
    """A dataset cannot be used as the recipe describes; the message names the dataset, split or column."""


class ModelLoadError(RuntimeError):
    """A model or tokenizer could not be found or loaded; the message says what to do."""


class PlotError(ValueError):
    """A run folder without anything to plot."""


class RewardFunctionError(RuntimeError):
    """A reward function raised, or returned something other than one score per completion."""


class NonFiniteTrainingError(RuntimeError):
    """Too many optimizer steps in a row had non-finite gradients or loss."""


USER_ERRORS = (RecipeError, DataError, ModelLoadError, PlotError)  # exit 2: fix the input and run again
STOPPED_RUN_ERRORS = (RewardFunctionError, NonFiniteTrainingError)  # exit 1: mid-run; the last checkpoint is kept

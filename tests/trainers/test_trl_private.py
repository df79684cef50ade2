"""The private parts of TRL's GRPOTrainer we rely on (`selfcorrect.trainers.trl_private`), against the installed TRL:
a TRL upgrade that moves one fails here, naming it. And verification composes only when asked for."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest
import trl
from trl import GRPOTrainer

from selfcorrect.trainers import trl_private
from tests.helpers import build_trainer, write_recipe

SCORE = dict(method="score", max_attempt_length=8, max_completion_length=96)


def test_installed_trl_is_the_pinned_minor():
    assert trl.__version__.startswith(trl_private.TRL_MINOR + "."), (
        f"TRL {trl.__version__} is installed; selfcorrect relies on private parts of TRL {trl_private.TRL_MINOR}'s "
        "GRPOTrainer (selfcorrect/trainers/trl_private.py). Check each name there against the new release, then move "
        "TRL_MINOR and the pin in pyproject.toml."
    )


def test_every_private_method_exists_with_its_parameters():
    for name, expected in trl_private.METHODS.items():
        method = getattr(GRPOTrainer, name, None)
        assert callable(method), f"TRL's GRPOTrainer has no method `{name}` any more (trl_private.METHODS)."
        parameters = list(inspect.signature(method).parameters)[1 : 1 + len(expected)]
        assert tuple(parameters) == expected, (
            f"TRL's GRPOTrainer.{name} now takes {parameters} where selfcorrect expects {list(expected)} "
            "(trl_private.METHODS)."
        )


def test_every_private_attribute_is_set_by_trl(tmp_path, tiny_model_dir):
    trainer = build_trainer(write_recipe(tmp_path, tiny_model_dir, **SCORE))
    for name in trl_private.ATTRIBUTES:
        assert name in vars(trainer), f"TRL's GRPOTrainer no longer sets `{name}` (trl_private.ATTRIBUTES)."
        assert not callable(getattr(GRPOTrainer, name, None)), f"`{name}` is a method in TRL now, not an attribute."
    source = inspect.getsource(GRPOTrainer.__init__)
    for name in trl_private.WHEN_CONFIGURED:
        assert re.search(rf"self\.{name}\b[^\n]*=", source), f"TRL's GRPOTrainer no longer sets `{name}`."


def test_logs_layout_is_trls(tmp_path, tiny_model_dir):
    trainer = build_trainer(write_recipe(tmp_path, tiny_model_dir, **SCORE))
    assert set(trl_private.fresh_logs(4)) == set(trainer._logs)


def test_a_trainer_without_verification_neither_inherits_nor_imports_it(tmp_path, tiny_model_dir):
    trainer = build_trainer(write_recipe(tmp_path, tiny_model_dir, **SCORE))
    assert not trainer.verifies
    assert all("Verification" not in cls.__name__ for cls in type(trainer).__mro__)
    code = (
        "import sys\n"
        "from selfcorrect.trainers import SCoReTrainer, UFOTrainer, NegativeSampleTrainer, RISETrainer\n"
        "import selfcorrect.trainers.score\n"
        "loaded = [m for m in ('selfcorrect.trainers.self_verification', 'selfcorrect.verification') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_verification_is_composed_in_when_asked(tmp_path, tiny_model_dir):
    from selfcorrect.trainers import SCoReTrainer
    from selfcorrect.trainers.self_verification import SelfVerification, with_verification

    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        **SCORE,
        verification_solutions=2,
        verification_generations=2,
        verification_max_length=8,
    )
    trainer = build_trainer(recipe)
    assert type(trainer) is with_verification(SCoReTrainer) and trainer.verifies
    mro = type(trainer).__mro__
    assert mro.index(SCoReTrainer) < mro.index(SelfVerification)  # the method's overrides see verification rows
    assert with_verification(type(trainer)) is type(trainer)


def test_a_trainer_class_without_the_pass_refuses_a_config_that_asks_for_it(tmp_path, tiny_model_dir):
    """Verification is composed in by the builder; a plain trainer class given `verification_solutions` says how."""
    from selfcorrect.trainers import SCoReTrainer
    from selfcorrect.trainers.self_verification import with_verification

    recipe = write_recipe(tmp_path, tiny_model_dir, **SCORE, verification_solutions=2, verification_max_length=8)
    trainer = build_trainer(recipe)
    parts = dict(train_dataset=trainer.train_dataset, processing_class=trainer.processing_class)
    with pytest.raises(ValueError, match=r"verification_solutions.*with_verification\(SCoReTrainer\)"):
        SCoReTrainer(model=trainer.model, reward_funcs=trainer.reward_funcs, args=trainer.args, **parts)
    rebuilt = with_verification(SCoReTrainer)(
        model=trainer.model, reward_funcs=trainer.reward_funcs, args=trainer.args, **parts
    )
    assert rebuilt.verifies


def test_rise_trainer_composes_its_verification_pass(tmp_path, tiny_model_dir):
    from selfcorrect.trainers import RISETrainer
    from selfcorrect.trainers.self_verification import with_verification

    rise_fields = dict(method="rise", reward_funcs=["outcome"], verification_solutions=2, verification_max_length=8)
    trainer = build_trainer(write_recipe(tmp_path, tiny_model_dir, **{**SCORE, **rise_fields}))
    parts = dict(train_dataset=trainer.train_dataset, processing_class=trainer.processing_class)
    rise = RISETrainer(model=trainer.model, reward_funcs=trainer.reward_funcs, args=trainer.args, **parts)
    assert type(rise) is with_verification(RISETrainer) and rise.verifies

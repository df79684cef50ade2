"""Recipes: every file in recipes/ parses; CLI overrides; unknown keys and wrong types fail early and clearly."""

from __future__ import annotations

import pytest
import yaml

from selfcorrect.configs import RecipeError, parse_recipe
from tests.helpers import ROOT

RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))


def test_there_are_recipes():
    assert any(p.parent.name == "demo" for p in RECIPES)


@pytest.mark.parametrize("recipe", RECIPES, ids=[str(p.relative_to(p.parents[1])) for p in RECIPES])
def test_every_recipe_parses_and_starts_with_its_command(recipe):
    first_line = recipe.read_text().splitlines()[0]
    assert first_line.startswith("# ") and ("selfcorrect" in first_line), first_line
    # GPU recipes ask for bf16, which transformers refuses on a machine without a GPU unless use_cpu is set.
    model_args, data_args, script_args, training_args = parse_recipe(["--config", str(recipe), "--use_cpu", "true"])
    values = yaml.safe_load(recipe.read_text())
    assert script_args.method == values.get("method", "grpo")
    assert model_args.model_name_or_path == values["model_name_or_path"]


def _write(tmp_path, **values):
    path = tmp_path / "r.yaml"
    path.write_text(
        yaml.safe_dump({"model_name_or_path": "embedded", "output_dir": str(tmp_path), "use_cpu": True, **values})
    )
    return str(path)


def test_cli_overrides_the_recipe(tmp_path):
    path = _write(tmp_path, method="score", learning_rate=1e-6, alpha=10.0, arithmetic_levels=[1, 2])
    _, data_args, _, args = parse_recipe(
        ["--config", path, "--learning_rate", "3e-5", "--alpha", "5", "--arithmetic_levels", "3", "4"]
    )
    assert args.learning_rate == 3e-5 and args.alpha == 5.0
    assert data_args.arithmetic_levels == [3, 4]
    assert type(args).__name__ == "SCoReConfig"


def test_unknown_key_names_the_file_and_suggests(tmp_path):
    path = _write(tmp_path, learning_rat=1e-6)
    with pytest.raises(RecipeError, match=r"(?s)r\.yaml.*learning_rat.*learning_rate"):
        parse_recipe(["--config", path])


def test_key_of_another_method_is_unknown(tmp_path):
    path = _write(tmp_path, method="grpo", alpha=10.0)  # alpha belongs to SCoRe
    with pytest.raises(RecipeError, match="alpha"):
        parse_recipe(["--config", path])


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("learning_rate", "fast", "float"),
        ("max_steps", 2.5, "int"),
        ("arithmetic_levels", 3, "list"),
        ("use_cpu", "yes", "bool"),
        ("reward_funcs", "accuracy", "list"),
    ],
)
def test_wrong_types_fail_before_training(tmp_path, field, value, expected):
    path = _write(tmp_path, **{field: value})
    with pytest.raises(RecipeError, match=rf"`{field}` must be of type .*{expected}"):
        parse_recipe(["--config", path])


def test_unknown_method_lists_the_supported_ones(tmp_path):
    with pytest.raises(RecipeError, match="score.*ufo|grpo.*score"):
        parse_recipe(["--config", _write(tmp_path, method="scor")])


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(method="score", max_attempts=1), "max_attempts"),
        (dict(method="score", score_stage=3), "score_stage"),
        (dict(method="score", feedback="nope"), "feedback"),
        (dict(method="score", feedback_template="Fix {answr}"), "placeholder"),
        (dict(method="score", score_stage=1, beta=0.0), "reference model"),
        (dict(method="ufo", ufo_gamma=0.0), "ufo_gamma"),
        (dict(arithmetic_levels=[7]), "arithmetic_levels"),
    ],
)
def test_invalid_method_settings(tmp_path, values, message):
    with pytest.raises((RecipeError, ValueError), match=message):
        parse_recipe(["--config", _write(tmp_path, **values)])


def test_missing_or_malformed_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        parse_recipe(["--config", str(tmp_path / "missing.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="mapping"):
        parse_recipe(["--config", str(bad)])


def _help_sections(help_text: str) -> dict[str, str]:
    """`--help` split into its argument groups: title -> the group's lines."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in help_text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return {title: "\n".join(lines) for title, lines in sections.items()}


@pytest.mark.parametrize("method", ["score", "ufo", "critique_grpo"])
def test_help_lists_the_method_fields_first_and_the_critic_fields_in_their_own_group(method):
    import dataclasses

    from selfcorrect.configs import recipe_dataclasses, recipe_parser
    from selfcorrect.critics import CriticConfig

    config = recipe_dataclasses(method)[-1]
    sections = _help_sections(recipe_parser(recipe_dataclasses(method)).format_help())
    titles = list(sections)
    own = titles.index(next(t for t in titles if t.startswith(f"{config.__name__}:")))
    critic = titles.index(CriticConfig.help_group)
    trl = titles.index("trl.GRPOConfig (and the classes it extends)")
    assert own < titles.index(next(t for t in titles if t.startswith("MultiAttemptConfig:"))) < critic < trl
    critic_flags = {f"--{f.name} " for f in dataclasses.fields(CriticConfig)}
    for title, text in sections.items():
        for flag in critic_flags:
            assert (flag in text) == (title == CriticConfig.help_group), (title, flag)
    assert "--learning_rate" in sections[titles[trl]] and "--max_attempts" not in sections[titles[trl]]


def test_critic_fields_are_not_the_methods_own():
    import inspect

    from selfcorrect.critics import CriticConfig
    from selfcorrect.trainers import get_method

    for method in ("score", "ufo", "critique_grpo"):
        config = get_method(method).config
        assert issubclass(config, CriticConfig)
        assert not any(name.startswith("critic") for name in inspect.get_annotations(config))


def test_critic_fields_work_with_feedback_critic_and_misspelled_ones_are_named(tmp_path):
    path = _write(tmp_path, method="score", feedback="critic", critic="indicative", critic_max_tokens=64)
    _, _, _, args = parse_recipe(["--config", path])
    assert args.feedback == "critic" and args.critic == "indicative" and args.critic_max_tokens == 64
    path = _write(tmp_path, method="ufo", feedback="critic", critic="endpoint", critic_ur="http://host:8000/v1")
    with pytest.raises(RecipeError, match=r"(?s)r\.yaml.*`critic_ur` \(did you mean `critic_url`"):
        parse_recipe(["--config", path])

"""Recipe dataclasses and parsing.

A recipe is one flat YAML file (the open-r1 convention) read by TRL's `TrlParser`: model fields (TRL's
`ModelConfig`), data fields (`DataArgs`), script fields (`ScriptArgs`) and the method's trainer config (a subclass of
TRL's `GRPOConfig`, chosen by `method`). Every field can be overridden on the command line (`--field value`).

Parsing is TrlParser's. Before it builds the configs we check what it does not (see `check_recipe_values`): unknown
keys (with the closest known names), recipe-file values of the wrong type, and the method name all fail with a message
naming the file and the field. `--help` lists each config's fields grouped by the class that declares them, the
method's own first (`recipe_parser`).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from .data.args import DataArgs
from .errors import RecipeError
from .precision import resolve_precision

if TYPE_CHECKING:  # TRL's configs import torch: loaded where a recipe is parsed, so `--help` answers without it
    from trl import GRPOConfig, ModelConfig


@dataclass
class ScriptArgs:
    """What to run: the method, the reward functions, the evaluation around training."""

    method: str = field(
        default="grpo",
        metadata={"help": "Trainer family: a registered name, or `package.module:name` (see `selfcorrect.trainers`)."},
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy", "format"],
        metadata={"help": "Reward functions: names from `selfcorrect.rewards.REWARD_FUNCS` or dotted paths."},
    )
    eval_before_training: bool = field(
        default=False, metadata={"help": "Run the self-correction evaluation before training."}
    )
    eval_after_training: bool = field(
        default=False, metadata={"help": "Run the self-correction evaluation after training."}
    )
    eval_attempts: int = field(default=2, metadata={"help": "Attempts per problem in the self-correction eval."})
    eval_max_new_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Token cap of each attempt in the eval (null: the recipe's `max_attempt_length`, or "
            "`max_completion_length` for single-attempt methods, so evaluation never cuts what training allows)."
        },
    )
    eval_temperature: float = field(default=0.0, metadata={"help": "0 for greedy evaluation (the papers' protocol)."})
    eval_batch_size: int = field(default=16, metadata={"help": "Prompts per generation batch in the eval."})
    eval_num_samples: int = field(
        default=0, metadata={"help": "Sampled answers per problem for pass@k (0: no pass@k)."}
    )
    eval_pass_k: list[int] = field(default_factory=lambda: [1, 4, 16], metadata={"help": "k values of pass@k."})
    eval_sample_temperature: float = field(default=1.0, metadata={"help": "Sampling temperature for pass@k."})
    eval_feedback: str | None = field(
        default=None,
        metadata={
            "help": "Feedback between attempts in the eval (a `selfcorrect.feedback.FEEDBACK` name; null: the recipe's "
            "training `feedback`, or `score_instruction` for single-attempt methods)."
        },
    )
    eval_feedback_template: str | None = field(
        default=None,
        metadata={
            "help": "Text of the eval's feedback turn (null: the training `feedback_template` when the eval uses the "
            "training feedback, else the provider's default)."
        },
    )
    eval_stop_on_correct: bool | None = field(
        default=None,
        metadata={
            "help": "End an eval episode at its first correct answer (null: the training `stop_on_correct` when the "
            "eval uses the training feedback, else false). Stop-on-correct evals report succ@k."
        },
    )
    eval_chat_template_kwargs: dict | None = field(
        default=None,
        metadata={
            "help": "Extra chat-template arguments of the eval's prompts (null: the recipe's chat_template_kwargs)."
        },
    )
    max_nonfinite_steps: int = field(
        default=3,
        metadata={
            "help": "Optimizer steps with NaN/inf gradients are skipped with a warning; this many in a row stop the "
            "run."
        },
    )
    selfcorrect_eval_steps: int = field(
        default=0,
        metadata={
            "help": "Run the self-correction evaluation every N optimizer steps during training and log it as "
            "`selfcorrect/eval/...` (0: off)."
        },
    )
    eval_verify_samples: int = field(
        default=0,
        metadata={
            "help": "RISE test time: k sampled answers per problem, each verified by the model itself; reports pass@1, "
            "majority vote and verification-weighted majority vote (0: off)."
        },
    )
    eval_verify_generations: int = field(default=1, metadata={"help": "Self-verifications per sampled answer."})
    eval_verify_max_new_tokens: int = field(default=256, metadata={"help": "Token cap of each verification."})
    eval_verify_template: str | None = field(
        default=None, metadata={"help": "Verification prompt with {question} and {response}; null: the default."}
    )
    zero_signal_warn_steps: int = field(
        default=5,
        metadata={
            "help": "Warn, naming the likely cause and the field to change, after this many logged training steps in a "
            "row in which every group had zero advantage (all wrong, all right or truncated: no gradient); 0: never."
        },
    )
    num_threads: int | None = field(
        default=None,
        metadata={
            "help": "torch's CPU threads (null: an explicit OMP_NUM_THREADS, else the cores free now: usable cores "
            "minus the load average, shared among the processes of this machine). The command prints its choice."
        },
    )
    quiet: bool = field(
        default=False,
        metadata={"help": "No progress lines (evaluation progress, the thread choice); tables and warnings remain."},
    )
    precision: str | None = field(
        default=None,
        metadata={
            "help": "Compute precision of training, evaluation and sampling: auto (bf16 where the machine computes it "
            "natively, else fp32), bf16 (autocast: fp32 weights and optimizer state, bf16 matmuls; fails at start "
            "where unsupported) or fp32; sets TRL's `bf16` / `fp16`. null: those fields decide. After parsing it holds "
            "the resolved value (bf16, fp16 or fp32). See `selfcorrect.precision`."
        },
    )

    def __post_init__(self):
        if self.zero_signal_warn_steps < 0:
            raise RecipeError(
                f"`zero_signal_warn_steps` must be >= 0 (0: never warn); got {self.zero_signal_warn_steps}."
            )
        if self.num_threads is not None and self.num_threads < 1:
            raise RecipeError(
                f"`num_threads` must be a positive integer (null: chosen from the free cores); got {self.num_threads}."
            )
        if self.max_nonfinite_steps < 1:
            raise RecipeError(f"`max_nonfinite_steps` must be at least 1; got {self.max_nonfinite_steps}.")
        if self.selfcorrect_eval_steps < 0:
            raise RecipeError(
                f"`selfcorrect_eval_steps` must be >= 0 (0: no evaluation during training); got "
                f"{self.selfcorrect_eval_steps}."
            )
        if self.eval_verify_samples:
            from .verification import check_eval_verify_fields

            try:
                check_eval_verify_fields(self)
            except ValueError as exc:
                raise RecipeError(str(exc)) from exc
        bad = [k for k in self.eval_pass_k if self.eval_num_samples and not 1 <= k <= self.eval_num_samples]
        if bad:
            raise RecipeError(
                f"`eval_pass_k` {bad}: pass@k needs 1 <= k <= `eval_num_samples` ({self.eval_num_samples})."
            )


def recipe_parser(dataclass_types: tuple[type, ...], **kwargs: Any):
    """TRL's `TrlParser` over `dataclass_types`, with `--help` grouped by where each field is declared: a method
    config's own fields first, then those of the configs it extends (the multi-attempt episode, the critic: a class
    may title its group with a `help_group` class attribute), then TRL's and transformers' fields in one group.
    Parsing is TRL's, unchanged; only the order and the titles of `--help` differ."""
    from trl import TrlParser

    class RecipeParser(TrlParser):
        # HfArgumentParser's hook that adds one dataclass's fields (not public; the `--help` tests pin it): the same
        # fields, each added by HfArgumentParser's own `_parse_dataclass_field`, into one argument group per class.
        def _add_dataclass_arguments(self, dtype):
            if hasattr(dtype, "_argument_group_name"):  # a class that asks for one group gets it
                return super()._add_dataclass_arguments(dtype)
            hints = typing.get_type_hints(dtype)
            owners = _field_owners(dtype)
            declaring = [cls for cls in dtype.__mro__ if cls in owners.values()]  # most derived first
            declaring.sort(key=lambda cls: not cls.__module__.startswith("selfcorrect"))  # TRL's last (stable sort)
            titles = {cls: _help_group_title(cls, dtype) for cls in declaring}  # once a class, not once a field
            groups: dict[str, Any] = {}
            for cls in declaring:  # the order `--help` prints the groups in
                if titles[cls] not in groups:
                    groups[titles[cls]] = self.add_argument_group(titles[cls])
            for f in dataclasses.fields(dtype):
                if f.init:
                    f.type = hints[f.name]  # as HfArgumentParser does before it adds a field
                    self._parse_dataclass_field(groups[titles[owners[f.name]]], f)

    return RecipeParser(dataclass_types, **kwargs)


def _field_owners(dtype: type) -> dict[str, type]:
    """field name -> the most derived class of `dtype` that declares it (a default a method redeclares is listed
    with the method's own fields)."""
    owners: dict[str, type] = {}
    for cls in dtype.__mro__:
        for name in inspect.get_annotations(cls):
            owners.setdefault(name, cls)
    return owners


def _help_group_title(cls: type, dtype: type) -> str:
    """A selfcorrect class: its `help_group`, else its name and docstring summary; TRL's and transformers' classes:
    one group, named after the first of them in `dtype`'s bases (e.g. TRL's GRPOConfig with TrainingArguments)."""
    if not cls.__module__.startswith("selfcorrect"):
        external = [c for c in set(_field_owners(dtype).values()) if not c.__module__.startswith("selfcorrect")]
        outer = next(c for c in dtype.__mro__ if c in external)
        title = f"{outer.__module__.split('.')[0]}.{outer.__name__}"
        return f"{title} (and the classes it extends)" if len(external) > 1 else title
    if "help_group" in vars(cls):
        return vars(cls)["help_group"]
    summary = re.split(r"(?<!et al)\. ", (inspect.getdoc(cls) or "").replace("\n", " "))[0].rstrip(".")  # 1st sentence
    return f"{cls.__name__}: {summary}" if summary else cls.__name__


def recipe_dataclasses(method: str) -> tuple[type, ...]:
    from trl import ModelConfig

    from .trainers import get_method

    try:
        config = get_method(method).config
    except ValueError as exc:
        raise RecipeError(f"`method`: {exc}") from exc
    return (ModelConfig, DataArgs, ScriptArgs, config)


# ---------------------------------------------------------------------------------------------------------------------
# What TrlParser does not check in a recipe file. TrlParser turns the file's values into argparse defaults, and argparse
# checks a default only when it is a string (converted by the field's type as on the command line; a failure exits with
# a usage message that names neither the file nor the field). Every other value reaches the dataclass unchecked:
# `max_steps: 2.5`, `reward_funcs: accuracy` (a string where a list belongs, later read letter by letter),
# `use_cpu: "yes"`. And TrlParser reports unknown keys only after every config has been built from the others, in a
# ValueError that names neither the file nor the closest known names. The command line needs none of this: argparse
# parses it with the types HfArgumentParser derives from the same field annotations.


def _matches(value: Any, annotation: Any) -> bool:
    if annotation is Any or annotation is typing.Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if origin is Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if origin in (list, tuple, set) or annotation in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        args = typing.get_args(annotation)
        return not args or all(_matches(v, args[0]) for v in value)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if isinstance(annotation, type) and issubclass(annotation, str):  # str-based enums (e.g. IntervalStrategy)
        return isinstance(value, str)
    if dataclasses.is_dataclass(annotation):  # nested config objects (e.g. parallelism_config) come as mappings
        return isinstance(value, dict | annotation)
    return True  # types we do not know how to check are left to the dataclass itself


def _describe(annotation: Any) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")


def check_recipe_values(values: dict[str, Any], parser: Any, source: str) -> None:
    """Raise `RecipeError` for unknown keys or values of the wrong type, naming `source` and the field.

    `parser` is the recipe's `TrlParser`: the keys it does not take are its own (`set_defaults_with_config`), the
    types are the annotations of its dataclasses, read as HfArgumentParser reads them."""
    fields: dict[str, Any] = {}
    for cls in parser.dataclass_types:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init:
                fields.setdefault(f.name, hints.get(f.name, f.type))
    remaining = parser.set_defaults_with_config(**{key: value for key, value in values.items() if key != "env"})
    unknown = [flag.removeprefix("--") for flag in remaining[::2]]  # TrlParser's [--key, value, ...]
    if unknown:
        lines = []
        for key in unknown:
            close = difflib.get_close_matches(key, list(fields), n=3)
            lines.append(f"  `{key}`" + (f" (did you mean {', '.join(f'`{c}`' for c in close)}?)" if close else ""))
        raise RecipeError(f"{source}: unknown recipe key(s):\n" + "\n".join(lines))
    for key, value in values.items():
        if key == "env" or value is None:
            continue
        if not _matches(value, fields[key]):
            raise RecipeError(
                f"{source}: `{key}` must be of type {_describe(fields[key])}; got {value!r} ({type(value).__name__})."
            )


POSITIVE_FIELDS = (
    "num_generations",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "steps_per_generation",
)


def _peek(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def load_recipe_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file {path} does not exist.")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(values, dict):
        raise RecipeError(f"{path}: a recipe must be a YAML mapping of field: value; got {type(values).__name__}.")
    return values


def parse_recipe(argv: list[str] | None = None) -> tuple[ModelConfig, DataArgs, ScriptArgs, GRPOConfig]:
    """Parse `--config recipe.yaml [--field value ...]` into (model_args, data_args, script_args, training_args)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config_path = _peek(argv, "config")
    values = load_recipe_file(config_path) if config_path else {}
    method = _peek(argv, "method") or values.get("method", "grpo")
    if not isinstance(method, str):
        raise RecipeError(f"{config_path or 'recipe'}: `method` must be a string; got {method!r}.")
    parser = recipe_parser(recipe_dataclasses(method))
    check_recipe_values(values, parser, source=str(config_path or "recipe"))
    for name in POSITIVE_FIELDS:  # TRL divides by these before it checks them
        value = _peek(argv, name) or values.get(name)
        if value is not None and str(value).lstrip("-").isdigit() and int(value) < 1:
            raise RecipeError(f"{config_path or 'recipe'}: `{name}` must be a positive integer; got {value}.")
    precision, beside = _precision_setting(argv, values)
    argv = argv + _precision_overrides(precision, argv, values, beside, source=str(config_path or "recipe"))
    try:
        model_args, data_args, script_args, training_args = parser.parse_args_and_config(argv)
    except SystemExit as exc:  # argparse exits on bad command-line values; turn that into an error we can show
        if exc.code in (0, None):  # `--help`: argparse printed it
            raise
        raise RecipeError(f"invalid command-line arguments: {' '.join(argv)}") from exc
    except (TypeError, ValueError, AttributeError, LookupError, OSError, ArithmeticError) as exc:
        if isinstance(exc, RecipeError):
            raise
        # TRL's and transformers' own checks raise ValueError with a clear message; the other types come from values
        # they did not expect (e.g. a number where a config object or a file path belongs).
        kind = "" if isinstance(exc, ValueError) else f"invalid value ({type(exc).__name__}: "
        raise RecipeError(
            f"{config_path or 'recipe'}: {kind}{exc}{')' if kind else ''}{_batch_hint(str(exc))}"
        ) from exc
    try:
        resolve_eval_settings(script_args, training_args)
        script_args.precision = resolve_precision(
            precision, bool(training_args.bf16), bool(training_args.fp16), _runs_on_cpu(training_args)
        )
    except ValueError as exc:
        raise RecipeError(f"{config_path or 'recipe'}: {exc}") from exc
    return model_args, data_args, script_args, training_args


def _runs_on_cpu(training_args: Any) -> bool:
    import torch

    return bool(getattr(training_args, "use_cpu", False)) or not torch.cuda.is_available()


def _as_bool(value: Any) -> bool | None:
    """A recipe's (bool) or the command line's (string) value of a bool field; None when not given."""
    if value is None or isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes")


def _precision_setting(argv: list[str], values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(`precision`, the fields it must agree with): the command line overrides the file, field by field, so a
    recipe's `precision` gives way to `--bf16` / `--fp16` on the command line (TRL's fields then decide), and
    `--precision` to nothing. A `precision` is checked against the `bf16` / `fp16` given where it was given."""
    if _peek(argv, "precision") is not None:
        return _peek(argv, "precision"), {}  # the file's bf16 / fp16 are overridden by it
    if _peek(argv, "bf16") is not None or _peek(argv, "fp16") is not None:
        return None, values
    return values.get("precision"), values


def _precision_overrides(
    precision: Any, argv: list[str], values: dict[str, Any], beside: dict[str, Any], source: str
) -> list[str]:
    """TRL's `bf16` / `fp16` as `precision` sets them (command-line arguments appended before TRL parses), after
    checking the machine supports them and that the `bf16` / `fp16` given beside it (`beside`: the file's when
    `precision` is the file's, none when it is the command line's) and the `dtype` agree. [] when `precision` is
    null: TRL's fields decide (checked after parsing)."""
    if precision is None:
        return []
    from .precision import PRECISIONS, machine_supports_bf16

    if precision not in PRECISIONS:
        raise RecipeError(
            f"{source}: `precision` must be one of {', '.join(PRECISIONS)} (or null); got {precision!r}."
        )
    on_cpu = _as_bool(_peek(argv, "use_cpu") or values.get("use_cpu")) or not _cuda_available()
    bf16 = precision == "bf16" or (precision == "auto" and machine_supports_bf16(on_cpu))
    for name, wanted in (("bf16", bf16), ("fp16", False)):
        given = _as_bool(beside.get(name))
        if given is not None and given != wanted:
            raise RecipeError(
                f"{source}: `precision: {precision}` sets `{name}: {str(wanted).lower()}` here, but the recipe also "
                f"says `{name}: {str(given).lower()}`: keep one of the two fields."
            )
    dtype = _peek(argv, "dtype") or values.get("dtype")
    if bf16 and on_cpu and dtype in ("bfloat16", "float16"):
        raise RecipeError(
            f"{source}: `precision: {precision}` computes in bf16 with fp32 master weights and optimizer state, but "
            f"`dtype: {dtype}` loads the weights themselves in {dtype}: set `dtype: float32`."
        )
    return ["--bf16", str(bf16), "--fp16", "False"]


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_eval_settings(script_args: ScriptArgs, training_args: Any) -> ScriptArgs:
    """Fill the eval fields left null from the training config, so evaluation builds the contexts training builds.

    - `eval_max_new_tokens`: `max_attempt_length` (multi-attempt methods) or `max_completion_length`;
    - `eval_feedback`: the training `feedback` (single-attempt methods: `score_instruction`; `feedback: critic`:
      `indicative_gt` or `indicative`, since evaluation builds no critic yet);
    - `eval_feedback_template`, `eval_stop_on_correct`: the training values when the eval uses the training feedback;
    - `eval_chat_template_kwargs`: the training `chat_template_kwargs`.
    """
    from .feedback import get_feedback_provider

    train_feedback = getattr(training_args, "feedback", None)
    if script_args.eval_max_new_tokens is None:
        cap = getattr(training_args, "max_attempt_length", None) or getattr(
            training_args, "max_completion_length", None
        )
        script_args.eval_max_new_tokens = int(cap or 128)
    if script_args.eval_max_new_tokens < 1:
        raise ValueError(f"`eval_max_new_tokens` must be positive; got {script_args.eval_max_new_tokens}.")
    if train_feedback == "critic" and script_args.eval_feedback is None:
        # Evaluation builds no critic yet: it gives the verdict every critique is checked against (with the gold
        # answer when the training critic states it), and says so in the table's feedback column.
        critic = getattr(training_args, "critic", "indicative_gt")
        script_args.eval_feedback = "indicative_gt" if critic == "indicative_gt" else "indicative"
    if script_args.eval_feedback == "critic":
        raise ValueError(
            "`eval_feedback: critic`: evaluation cannot build a critic yet; use indicative or indicative_gt (the "
            "verdict a critique is checked against), the default for a `feedback: critic` recipe."
        )
    if script_args.eval_feedback is None:
        script_args.eval_feedback = train_feedback or "score_instruction"
    same_feedback = script_args.eval_feedback == train_feedback
    if script_args.eval_feedback_template is None and same_feedback:
        script_args.eval_feedback_template = getattr(training_args, "feedback_template", None)
    if script_args.eval_stop_on_correct is None:
        script_args.eval_stop_on_correct = bool(same_feedback and getattr(training_args, "stop_on_correct", False))
    if script_args.eval_chat_template_kwargs is None:
        script_args.eval_chat_template_kwargs = dict(getattr(training_args, "chat_template_kwargs", None) or {})
    try:  # an unknown provider or a bad template fails here, not after the model has loaded
        get_feedback_provider(script_args.eval_feedback, script_args.eval_feedback_template)
    except ValueError as exc:
        raise ValueError(f"`eval_feedback` / `eval_feedback_template`: {exc}") from exc
    return script_args


def _batch_hint(message: str) -> str:
    """How TRL derives the generation batch, for its divisibility errors (the user never set that field)."""
    if "generation_batch_size" not in message or "num_generations" not in message:
        return ""
    import os

    world = os.environ.get("WORLD_SIZE", "1")
    return (
        f" The generation batch is `per_device_train_batch_size` x processes ({world} here) x `steps_per_generation` "
        "(default: `gradient_accumulation_steps`); each group of `num_generations` completions of one prompt must fit "
        "in it (a group may span processes)."
    )


def recipe_help(command: str) -> str:
    """`selfcorrect train|eval --help`: the command line and the model, data and script fields, without importing
    torch (TRL's `GRPOConfig` and the method configs need it; `--help-all` lists those too)."""
    from trl import ModelConfig

    parser = recipe_parser(
        (ModelConfig, DataArgs, ScriptArgs),
        prog=f"selfcorrect {command}",
        usage=f"selfcorrect {command} --config RECIPE.yaml [--field value ...]",
        epilog=(
            "A recipe also takes every field of its method's trainer config: TRL's GRPOConfig (learning_rate, "
            "max_steps, num_generations, max_completion_length, ...) and the method's own (max_attempts, "
            f"max_attempt_length, ...). List them all with `selfcorrect {command} --help-all [--method NAME]` "
            "(slower: loads torch)."
        ),
    )
    return parser.format_help()

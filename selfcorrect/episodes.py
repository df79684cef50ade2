"""The multi-attempt rollout shared by training and evaluation.

An episode is: prompt -> attempt 1 -> feedback turn -> attempt 2 -> ... -> attempt K (or an earlier stop). Contexts are
built by splicing token ids (prompt + every earlier attempt exactly as sampled + the tokens of each feedback turn), never
by re-rendering decoded text, which re-tokenizes 3-10 % of attempts differently and would train on tokens the model
never sampled. The feedback turn's tokens are the difference between two chat-template renders (with and without the
user turn), the way TRL's tool loop finds a tool message's tokens.

`env_mask` marks model tokens 1 and environment tokens 0 (feedback turns, and the end-of-turn token we append after an
attempt cut off by the token cap); TRL multiplies it into the loss mask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .feedback import AttemptOutcome, FeedbackProvider
from .rewards import extract_boxed, verify_completion


def eos_ids(tokenizer, extra: Sequence[int] | int | None = None) -> list[int]:
    """The tokenizer's EOS id followed by the other ids of `extra` (a generation config's `eos_token_id`)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for tok in [extra] if isinstance(extra, int) else list(extra or []):
        if tok is not None and tok not in ids:
            ids.append(int(tok))
    return ids


class GenerateFn(Protocol):
    """Sample one continuation per context; returns (token ids, per-token sampling log-probs or None)."""

    def __call__(
        self, contexts: list[list[int]], max_new_tokens: int, attempt: int
    ) -> tuple[list[list[int]], list[list[float]] | None]: ...


JudgeFn = Callable[[str, dict[str, Any]], "bool | None"]


def judge_accuracy(text: str, row: dict[str, Any]) -> bool | None:
    """Default judge: the last boxed answer checked with math-verify against `row["solution"]`."""
    return verify_completion(text, row["solution"])


def attempt_verdict(judged: bool | None, truncated: bool) -> bool | None:
    """An attempt's verdict: the judge's, except that an attempt cut off by the token cap is wrong (its answer may be
    a fragment of a longer one). None (a gold that does not parse) stays None. The one home of this rule."""
    return False if truncated and judged else judged


@dataclass
class Episode:
    """One rollout: token ids, the loss mask's environment part, and per-attempt bookkeeping."""

    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)  # attempt 1 + feedback 1 + attempt 2 + ...
    env_mask: list[int] = field(default_factory=list)  # 1 = sampled by the model, 0 = environment
    logprobs: list[float] | None = field(default_factory=list)
    attempt_spans: list[tuple[int, int]] = field(default_factory=list)  # [start, end) of each attempt
    attempt_texts: list[str] = field(default_factory=list)
    attempt_answers: list[str | None] = field(default_factory=list)
    attempt_correct: list[bool | None] = field(default_factory=list)  # the verdict: judged, truncated = wrong
    attempt_judged: list[bool | None] = field(default_factory=list)  # the judge's own output (accuracy reward)
    attempt_truncated: list[bool] = field(default_factory=list)
    feedback_texts: list[str] = field(default_factory=list)

    @property
    def num_attempts(self) -> int:
        return len(self.attempt_spans)


class ChatTurns:
    """Token ids of the turns we splice in, from the tokenizer's chat template (cached per feedback text)."""

    def __init__(
        self,
        tokenizer,
        chat_template: str | None = None,
        chat_template_kwargs: dict | None = None,
        multi_turn: bool = True,
        eos_token_ids: Sequence[int] | int | None = None,
    ):
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.kwargs = chat_template_kwargs or {}
        self.eos_token_id = tokenizer.eos_token_id  # what we append after an attempt cut off by the cap
        # Every id that ends an attempt: the tokenizer's EOS and the generation config's list (Qwen2.5-Instruct stops at
        # <|im_end|> and <|endoftext|>), as `generate` and TRL do.
        self.eos_token_ids = frozenset(eos_ids(tokenizer, eos_token_ids))
        self._cache: dict[str, list[int]] = {}
        if not multi_turn:  # single-attempt episodes never splice a feedback turn
            return
        if chat_template is None and getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(
                "the tokenizer has no chat template, so attempts and feedback cannot be written as chat turns; "
                "use an instruct model or set `chat_template_path`."
            )
        self.feedback_ids("Please try again.")  # fail at construction if the template cannot express the turns

    @classmethod
    def for_model(
        cls, tokenizer, model=None, chat_template_kwargs: dict | None = None, multi_turn: bool = False
    ) -> ChatTurns:
        """The turns a plain transformers `model` generates (evaluation, trace sampling): its generation config's EOS
        ids end an attempt, as they stop `HFGenerate`; `model` may be None (scripted generators in tests)."""
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        return cls(tokenizer, chat_template_kwargs=chat_template_kwargs, multi_turn=multi_turn, eos_token_ids=eos)

    def ends_attempt(self, ids: Sequence[int]) -> bool:
        """True when a sampled attempt stopped by itself (its last token is an EOS id), False when the cap cut it."""
        return bool(ids) and ids[-1] in self.eos_token_ids

    def prompt_ids(self, messages: list[dict] | str) -> list[int]:
        """A prompt's ids as training renders them (TRL's `_tokenize_prompts`: the same template and kwargs)."""
        if isinstance(messages, str):
            return list(self.tokenizer(messages, add_special_tokens=False)["input_ids"])
        return self._render(messages, add_generation_prompt=True)

    def _render(self, messages: list[dict], add_generation_prompt: bool) -> list[int]:
        ids = self.tokenizer.apply_chat_template(
            messages,
            chat_template=self.chat_template,
            add_generation_prompt=add_generation_prompt,
            tokenize=True,
            return_dict=False,
            **self.kwargs,
        )
        return list(ids[0] if ids and isinstance(ids[0], list) else ids)

    def feedback_ids(self, text: str) -> list[int]:
        """Tokens that follow an assistant turn's end-of-turn token: the user turn, then the assistant header."""
        if text in self._cache:
            return self._cache[text]
        history = [{"role": "user", "content": "Question?"}, {"role": "assistant", "content": "Answer."}]
        prefix = self._render(history, add_generation_prompt=False)
        full = self._render(history + [{"role": "user", "content": text}], add_generation_prompt=True)
        # Cut the prefix right after its last end-of-turn token: that is where a sampled attempt stops.
        eos_positions = [i for i, tok in enumerate(prefix) if tok in self.eos_token_ids]
        if eos_positions:
            prefix = prefix[: eos_positions[-1] + 1]
        if full[: len(prefix)] != prefix or len(full) == len(prefix):
            raise ValueError(
                "the chat template cannot express a multi-turn conversation (rendering an extra user turn does not "
                "extend the conversation's tokens); multi-attempt training needs a template with alternating turns."
            )
        suffix = full[len(prefix) :]
        self._cache[text] = suffix
        return suffix


@dataclass
class EpisodeSpec:
    max_attempts: int = 2
    max_attempt_tokens: int = 128
    stop_on_correct: bool = False


def run_episodes(
    prompt_ids: Sequence[list[int]],
    rows: Sequence[dict[str, Any]],
    generate: GenerateFn,
    decode: Callable[[list[int]], str],
    feedback: FeedbackProvider | Callable[[list[AttemptOutcome]], list[str | None]],
    turns: ChatTurns,
    spec: EpisodeSpec,
    judge: JudgeFn = judge_accuracy,
    any_active: Callable[[bool], bool] | None = None,
) -> list[Episode]:
    """Roll out one episode per prompt; each attempt is one batched generation call over the still-active episodes.

    In a multi-process run, generation is a collective (ZeRO-3 gathers weights, vLLM server mode gathers prompts and
    slices the results by equal shares), so every rank must make the same calls with the same number of contexts:
    `any_active(local_flag)` says whether any rank still has an active episode, and inactive slots are filled with
    padding contexts whose samples are discarded.
    """
    feedback_batch = feedback.batch if isinstance(feedback, FeedbackProvider) else feedback
    episodes = [Episode(prompt_ids=list(ids)) for ids in prompt_ids]
    active = list(range(len(episodes)))
    for attempt in range(spec.max_attempts):
        if not (any_active(bool(active)) if any_active is not None else active):
            break
        contexts = [episodes[i].prompt_ids + episodes[i].completion_ids for i in active]
        if any_active is not None:  # equal batch on every rank: pad with the shortest prompt
            padding = min((ep.prompt_ids for ep in episodes), key=len)
            contexts += [padding] * (len(episodes) - len(contexts))
        samples, sample_logprobs = generate(contexts, spec.max_attempt_tokens, attempt)
        waiting: list[tuple[int, AttemptOutcome]] = []  # episodes that go on if their feedback turn is not None
        for j, i in enumerate(active):
            episode, ids = episodes[i], list(samples[j])
            truncated = not turns.ends_attempt(ids)
            start = len(episode.completion_ids)
            episode.completion_ids += ids
            episode.env_mask += [1] * len(ids)
            if episode.logprobs is not None and sample_logprobs is not None:
                episode.logprobs += list(sample_logprobs[j])
            else:
                episode.logprobs = None
            episode.attempt_spans.append((start, start + len(ids)))
            text = decode(ids)
            answer = extract_boxed(text)
            judged = judge(text, rows[i])
            correct = attempt_verdict(judged, truncated)
            episode.attempt_texts.append(text)
            episode.attempt_answers.append(answer)
            episode.attempt_correct.append(correct)
            episode.attempt_judged.append(judged)
            episode.attempt_truncated.append(truncated)
            if attempt + 1 == spec.max_attempts or (spec.stop_on_correct and correct):
                continue
            waiting.append((i, AttemptOutcome(attempt, text, answer, correct, truncated, rows[i])))
        if attempt + 1 == spec.max_attempts:
            break
        # One call for the round's feedback turns, on every rank even with none (a critic may generate collectively).
        messages = feedback_batch([outcome for _, outcome in waiting])
        still_active = []
        for (i, outcome), message in zip(waiting, messages, strict=True):
            if message is None:
                continue
            episode = episodes[i]
            # Close a truncated attempt with the end-of-turn token (an environment token: the model did not sample it).
            extra = ([turns.eos_token_id] if outcome.truncated else []) + turns.feedback_ids(message)
            episode.completion_ids += extra
            episode.env_mask += [0] * len(extra)
            if episode.logprobs is not None:
                episode.logprobs += [0.0] * len(extra)  # masked out of the loss and of vLLM's IS correction
            episode.feedback_texts.append(message)
            still_active.append(i)
        active = still_active
    return episodes


def max_episode_length(spec: EpisodeSpec, turns: ChatTurns, feedback_text: str) -> int:
    """Upper bound on an episode's completion length, for checking `max_completion_length`."""
    per_feedback = 1 + len(turns.feedback_ids(feedback_text))
    return spec.max_attempts * spec.max_attempt_tokens + (spec.max_attempts - 1) * (per_feedback + 16)


class HFGenerate:
    """`GenerateFn` over a plain transformers model (evaluation): left-padded batches, greedy or sampled."""

    def __init__(self, model, tokenizer, temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 16):
        self.model, self.tokenizer = model, tokenizer
        self.temperature, self.top_p, self.batch_size = temperature, top_p, batch_size

    def __call__(self, contexts, max_new_tokens, attempt):
        import torch

        outputs: list[list[int]] = []
        pad_id = self.tokenizer.pad_token_id
        stop_ids = eos_ids(self.tokenizer, getattr(self.model.generation_config, "eos_token_id", None))
        device = next(self.model.parameters()).device
        for start in range(0, len(contexts), self.batch_size):
            batch = contexts[start : start + self.batch_size]
            width = max(len(c) for c in batch)
            input_ids = torch.tensor([[pad_id] * (width - len(c)) + c for c in batch], device=device)  # (b, width)
            attention_mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in batch], device=device)
            sampling = dict(do_sample=True, temperature=self.temperature, top_p=self.top_p)
            with torch.no_grad():
                generated = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=pad_id,
                    eos_token_id=stop_ids,
                    **(sampling if self.temperature > 0 else dict(do_sample=False)),
                )[:, width:]  # (b, new)
            for row in generated.tolist():
                stop = next((i for i, tok in enumerate(row) if tok in stop_ids), None)
                outputs.append(row if stop is None else row[: stop + 1])
        return outputs, None

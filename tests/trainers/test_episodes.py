"""The episode engine: token splicing, masks that exclude exactly the feedback tokens, early stop, truncation."""

import pytest

from selfcorrect.episodes import ChatTurns, EpisodeSpec, run_episodes
from selfcorrect.feedback import (
    SCORE_INSTRUCTION,
    AttemptOutcome,
    FeedbackTemplateError,
    InstructionFeedback,
    UnaryFeedback,
    check_template,
    get_feedback_provider,
)
from tests.helpers import ScriptedGenerate


def _setup(tokenizer, questions, scripts):
    prompts = [
        list(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True, return_dict=False
            )
        )
        for q in questions
    ]
    return prompts, ScriptedGenerate(tokenizer, lambda i, k: scripts[i][k], prompts=prompts)


def test_feedback_tokens_are_exactly_the_masked_ones(tokenizer):
    turns = ChatTurns(tokenizer)
    questions = ["What is 2 + 3?", "What is 4 + 4?"]
    scripts = [["It is \\boxed{6}.", "Sorry, it is \\boxed{5}."], ["It is \\boxed{8}.", "Still \\boxed{8}."]]
    prompts, generate = _setup(tokenizer, questions, scripts)
    rows = [{"solution": "5"}, {"solution": "8"}]
    episodes = run_episodes(
        prompts,
        rows,
        generate,
        lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        InstructionFeedback(),
        turns,
        EpisodeSpec(max_attempts=2, max_attempt_tokens=64),
    )
    feedback_ids = turns.feedback_ids(SCORE_INSTRUCTION)
    for ep, script in zip(episodes, scripts):
        a1 = tokenizer.encode(script[0], add_special_tokens=False) + [tokenizer.eos_token_id]
        a2 = tokenizer.encode(script[1], add_special_tokens=False) + [tokenizer.eos_token_id]
        assert ep.completion_ids == a1 + feedback_ids + a2
        assert ep.env_mask == [1] * len(a1) + [0] * len(feedback_ids) + [1] * len(a2)
        assert ep.attempt_spans == [(0, len(a1)), (len(a1) + len(feedback_ids), len(a1) + len(feedback_ids) + len(a2))]
        # the masked tokens decode to the user turn carrying the instruction, and nothing else
        masked = [t for t, m in zip(ep.completion_ids, ep.env_mask) if m == 0]
        assert SCORE_INSTRUCTION in tokenizer.decode(masked)
        assert "boxed{" not in tokenizer.decode(masked).replace(SCORE_INSTRUCTION, "")
    assert [ep.attempt_correct for ep in episodes] == [[False, True], [True, True]]
    assert [ep.attempt_answers for ep in episodes] == [["6", "5"], ["8", "8"]]
    # attempt 2 was generated from prompt + attempt 1 (as sampled) + feedback: spliced tokens, not re-rendered text
    attempt, contexts = generate.calls[1]
    assert attempt == 1 and contexts[0] == prompts[0] + episodes[0].completion_ids[: episodes[0].attempt_spans[1][0]]


def test_feedback_tokens_match_a_full_chat_template_render(tokenizer):
    turns = ChatTurns(tokenizer)
    history = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A1"}]
    spliced = list(tokenizer.apply_chat_template(history, tokenize=True, return_dict=False))
    eos_at = max(i for i, t in enumerate(spliced) if t == tokenizer.eos_token_id)
    spliced = spliced[: eos_at + 1] + turns.feedback_ids("Try again.")
    full = tokenizer.apply_chat_template(
        history + [{"role": "user", "content": "Try again."}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    assert spliced == list(full)


def test_stop_on_correct_and_unary_feedback(tokenizer):
    turns = ChatTurns(tokenizer)
    scripts = [["\\boxed{5}", "x", "x"], ["\\boxed{1}", "\\boxed{2}", "\\boxed{5}"], ["\\boxed{1}", "\\boxed{1}", "a"]]
    prompts, generate = _setup(tokenizer, ["a?", "b?", "c?"], scripts)
    rows = [{"solution": "5"}] * 3
    episodes = run_episodes(
        prompts,
        rows,
        generate,
        lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        UnaryFeedback(),
        turns,
        EpisodeSpec(max_attempts=3, max_attempt_tokens=32, stop_on_correct=True),
    )
    assert [ep.num_attempts for ep in episodes] == [1, 3, 3]
    assert [len(ep.feedback_texts) for ep in episodes] == [0, 2, 2]
    assert episodes[1].attempt_correct == [False, False, True]
    # generation batches shrink as episodes stop
    assert [len(c) for _, c in generate.calls] == [3, 2, 2]


def test_truncated_attempt_is_wrong_and_closed_with_an_environment_eos(tokenizer):
    turns = ChatTurns(tokenizer)
    long = "The answer is \\boxed{5} " + "and more words " * 20
    prompts, generate = _setup(tokenizer, ["q?"], [[long, "\\boxed{5}"]])
    episodes = run_episodes(
        prompts,
        [{"solution": "5"}],
        generate,
        lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        InstructionFeedback(),
        turns,
        EpisodeSpec(max_attempts=2, max_attempt_tokens=10),
    )
    ep = episodes[0]
    assert ep.attempt_truncated == [True, False]
    assert ep.attempt_correct == [False, True]  # boxed 5 inside a truncated attempt still counts as wrong
    end = ep.attempt_spans[0][1]
    assert ep.completion_ids[end] == tokenizer.eos_token_id and ep.env_mask[end] == 0


def test_feedback_templates_are_validated():
    assert check_template("Your answer {answer} is wrong.") == "Your answer {answer} is wrong."
    with pytest.raises(FeedbackTemplateError, match="unknown placeholder"):
        check_template("Fix {answr}")
    with pytest.raises(FeedbackTemplateError, match="solution"):
        check_template("Try again", required=frozenset({"solution"}))
    with pytest.raises(ValueError, match="unknown feedback provider"):
        get_feedback_provider("nope")
    gt = get_feedback_provider("indicative_gt")
    text = gt(AttemptOutcome(0, "", "3", False, False, {"solution": "7"}))
    assert "incorrect" in text and "7" in text


def test_template_without_multi_turn_support_is_rejected(tokenizer):
    single_turn = "{% for m in messages %}{{ m['content'] }}{% endfor %}{{ eos_token }}"
    with pytest.raises(ValueError, match="multi-turn"):
        ChatTurns(tokenizer, chat_template=single_turn)


def test_ranks_keep_generating_together_while_any_rank_is_active(tokenizer):
    """Multi-process: a rank whose episodes all stopped still joins each generation call, with an equal-size batch."""
    turns = ChatTurns(tokenizer)
    scripts = [["\\boxed{5}"] * 3, ["\\boxed{5}"] * 3]
    prompts, generate = _setup(tokenizer, ["a?", "bb?"], scripts)
    other_rank_active = iter([True, True, True])  # another rank is still in its episodes for all 3 attempts
    episodes = run_episodes(
        prompts,
        [{"solution": "5"}] * 2,
        generate,
        lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        UnaryFeedback(),
        turns,
        EpisodeSpec(max_attempts=3, max_attempt_tokens=16, stop_on_correct=True),
        any_active=lambda local: local or next(other_rank_active),
    )
    assert [ep.num_attempts for ep in episodes] == [1, 1]  # both correct at once: the padding changed nothing
    assert [len(contexts) for _, contexts in generate.calls] == [2, 2, 2]  # but every call had the full batch
    shortest = min(prompts, key=len)
    assert generate.calls[1][1] == [shortest, shortest]

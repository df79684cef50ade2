"""Critics: verdict parsing, agreement with the checker (regenerate, then indicative, counted), an OpenAI-compatible
endpoint on a local fake server (answers, timeouts, errors, a server that is down), and critiques as feedback."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from selfcorrect.critics import (
    CriticError,
    CritiqueFeedback,
    CritiqueRequest,
    EndpointCritic,
    GenerateCritic,
    HFCritic,
    IndicativeCritic,
    chat_completions_url,
    parse_verdict,
)
from selfcorrect.feedback import AttemptOutcome
from tests.helpers import build_trainer, write_recipe

WRONG = CritiqueRequest(question="What is 2 + 3?", response="2 + 3 = 6. \\boxed{6}", correct=False, solution="5")
RIGHT = CritiqueRequest(question="What is 2 + 2?", response="\\boxed{4}", correct=True, solution="4")


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("Step 2 adds wrongly.\nVerdict: incorrect", False),
        ("All steps hold.\n**Verdict:** Correct", True),
        ("verdict - wrong", False),
        ("The answer is \\boxed{correct}", True),
        ("Verdict: correct ... on reflection, Verdict: incorrect", False),  # the last verdict counts
        ("The solution looks incorrect to me.", None),  # no verdict line
        ("", None),
    ],
)
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) is verdict


def test_indicative_critiques():
    assert IndicativeCritic().critique([WRONG, RIGHT])[0].text == "The generated solution is incorrect."
    gt = IndicativeCritic(with_ground_truth=True).critique([WRONG, RIGHT])
    assert [c.text for c in gt] == [
        "The generated solution is incorrect. The ground truth is 5.",
        "The generated solution is correct. The ground truth is 4.",
    ]
    assert [c.verdict for c in gt] == [False, True]


def test_model_critique_kept_only_when_its_verdict_agrees():
    """Request 0 agrees at once; 1 disagrees, then agrees on the retry; 2 never gives a verdict: indicative."""
    scripts = {0: ["Fine.\nVerdict: incorrect"], 1: ["Verdict: correct", "Off by one.\nVerdict: incorrect"], 2: []}
    requests = [WRONG, WRONG, WRONG]
    requests = [CritiqueRequest(f"q{i}", r.response, r.correct, r.solution) for i, r in enumerate(requests)]
    calls = []

    def generate(messages):
        calls.append(len(messages))
        out = []
        for m in messages:
            i = int(m[-1]["content"].split("Problem:\n")[1][1])
            out.append(scripts[i].pop(0) if scripts[i] else "I cannot decide.")
        return out

    critic = GenerateCritic(generate, retries=2)
    critiques = critic.critique(requests)
    assert [c.source for c in critiques] == ["model", "model", "fallback"]
    assert critiques[1].text == "Off by one.\nVerdict: incorrect" and critiques[1].tries == 2
    assert critiques[2].text == "The generated solution is incorrect." and critiques[2].tries == 3
    assert calls == [3, 2, 1]  # only disagreeing requests are regenerated
    s = critic.stats
    assert (s.requests, s.agreed_first, s.regenerated, s.fallbacks, s.no_verdict) == (3, 1, 3, 1, 3)


def test_collective_critic_generates_every_round_even_with_nothing_pending():
    calls = []
    critic = GenerateCritic(lambda m: calls.append(len(m)) or [], collective=True, retries=2)
    assert critic.critique([]) == []
    assert calls == [0, 0, 0]  # a rank with no request still joins each generation call


# --- a fake OpenAI-compatible server -----------------------------------------------------------------------------------


class FakeServer:
    """`/v1/chat/completions` on localhost; `replies` is a list of (status, content or None, delay_s) served in
    order (the last one repeats)."""

    def __init__(self, replies):
        self.replies, self.requests = list(replies), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(200, {"data": [{"id": "critic"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body))
                status, content, delay = outer.replies.pop(0) if len(outer.replies) > 1 else outer.replies[0]
                time.sleep(delay)
                payload = {"choices": [{"message": {"role": "assistant", "content": content}}]}
                self._send(status, payload if content is not None else {"error": "no"})

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server(request):
    fake = FakeServer(request.param)
    yield fake
    fake.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chat_completions_url():
    assert chat_completions_url("http://h:8000") == "http://h:8000/v1/chat/completions"
    assert chat_completions_url("http://h:8000/v1/") == "http://h:8000/v1/chat/completions"
    assert chat_completions_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"


@pytest.mark.parametrize("server", [[(200, "Step 1 is wrong: 2 + 3 = 5.\nVerdict: incorrect", 0.0)]], indirect=True)
def test_endpoint_critique(server):
    critic = EndpointCritic(server.url, model="critic-7b", max_tokens=64, timeout=5)
    critic.check()
    critiques = critic.critique([WRONG, WRONG])
    assert [c.source for c in critiques] == ["model", "model"]
    assert critiques[0].text.startswith("Step 1 is wrong") and critiques[0].verdict is False
    path, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert body["model"] == "critic-7b" and body["max_tokens"] == 64
    assert (
        "2 + 3 = 6" in body["messages"][0]["content"] and "Reference final answer: 5" in body["messages"][0]["content"]
    )


@pytest.mark.parametrize(
    "server", [[(500, None, 0.0), (503, None, 0.0), (200, "Verdict: incorrect", 0.0)]], indirect=True
)
def test_endpoint_retries_server_errors(server):
    critic = EndpointCritic(server.url, timeout=5, http_retries=2, backoff=0.01)
    assert critic.critique([WRONG])[0].source == "model"
    assert len(server.requests) == 3


@pytest.mark.parametrize("server", [[(200, "Verdict: incorrect", 3.0)]], indirect=True)
def test_slow_endpoint_times_out_then_falls_back_or_raises(server):
    critic = EndpointCritic(server.url, timeout=0.3, http_retries=1, backoff=0.01)
    start = time.perf_counter()
    critique = critic.critique([WRONG])[0]
    assert time.perf_counter() - start < 2.5  # 2 tries of 0.3 s, never the server's 3 s
    assert critique.source == "fallback" and critique.text == "The generated solution is incorrect."
    assert (critic.stats.errors, critic.stats.fallbacks) == (1, 1)
    strict = EndpointCritic(server.url, timeout=0.3, http_retries=0, on_error="raise")
    with pytest.raises(CriticError, match=r"did not answer after 1 tries \(timeout 0.3 s"):
        strict.critique([WRONG])


def test_endpoint_down():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    critic = EndpointCritic(url, timeout=1, http_retries=2, backoff=0.01)
    with pytest.raises(CriticError, match="not reachable"):
        critic.check()
    start = time.perf_counter()
    assert critic.critique([WRONG])[0].source == "fallback"
    assert time.perf_counter() - start < 2
    with pytest.raises(CriticError, match="did not answer after 3 tries"):
        EndpointCritic(url, timeout=1, http_retries=2, backoff=0.01, on_error="raise").critique([WRONG])


@pytest.mark.parametrize("server", [[(200, "The student is wrong.", 0.0)]], indirect=True)
def test_endpoint_reply_without_verdict_is_regenerated_then_replaced(server):
    critic = EndpointCritic(server.url, timeout=5, retries=1)
    critique = critic.critique([WRONG])[0]
    assert critique.source == "fallback" and critique.tries == 2
    assert len(server.requests) == 2 and critic.stats.no_verdict == 2


def test_hf_critic_on_a_local_model(tiny_model_dir):
    """A separate local model as critic (random weights: no verdict, so the indicative critique is used)."""
    critic = HFCritic(str(tiny_model_dir), max_new_tokens=4, retries=0)
    critique = critic.critique([WRONG])[0]
    assert critique.source == "fallback" and critic.stats.fallbacks == 1


def test_critique_as_feedback_turn():
    feedback = CritiqueFeedback(IndicativeCritic(with_ground_truth=True))
    row = {
        "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "What is 2 + 3?"}],
        "solution": "5",
    }
    text = feedback(AttemptOutcome(0, "\\boxed{6}", "6", False, False, row))
    assert text == "The generated solution is incorrect. The ground truth is 5." + CritiqueFeedback.SUFFIX


def test_critique_feedback_asks_once_per_round_and_even_with_nothing_to_critique():
    """A round's outcomes in one critique call; a collective critic is called with none too (other ranks may have)."""
    calls = []

    def generate(messages):
        calls.append(len(messages))
        return ["Looks wrong.\nVerdict: incorrect"] * len(messages)

    feedback = CritiqueFeedback(GenerateCritic(generate, collective=True, retries=0), suffix=" Fix it.")
    row = {"prompt": "What is 2 + 3?", "solution": "5"}
    outcomes = [AttemptOutcome(0, f"\\boxed{{{a}}}", str(a), False, False, row) for a in (6, 7, 8)]
    assert feedback.batch(outcomes) == ["Looks wrong.\nVerdict: incorrect Fix it."] * 3
    assert feedback.batch([]) == []
    assert calls == [3, 0]


# --- `feedback: critic` in a multi-attempt trainer ----------------------------------------------------------------------

SCORE_WITH_CRITIC = dict(method="score", feedback="critic", max_attempt_length=8, max_completion_length=400)


def test_feedback_critic_indicative_in_score(tmp_path, tiny_model_dir):
    recipe = write_recipe(tmp_path, tiny_model_dir, critic="indicative_gt", **SCORE_WITH_CRITIC)
    trainer = build_trainer(recipe)
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]
    trainer.model.train()
    out = trainer._generate_and_score_completions(rows)
    for b, row in enumerate(rows):
        verdict = "correct" if row["attempt_correct"][0] else "incorrect"
        expected = f"The generated solution is {verdict}. The ground truth is {row['solution']}."
        assert row["feedback_texts"] == [expected + CritiqueFeedback.SUFFIX]
        (_, end), (start, _) = row["attempt_spans"]
        assert (out["completion_mask"][b, end:start] * out["tool_mask"][b, end:start]).sum() == 0  # masked


def test_feedback_critic_self_critiques_with_the_policy(tmp_path, tiny_model_dir):
    recipe = write_recipe(
        tmp_path, tiny_model_dir, critic="self", critic_max_tokens=6, critic_retries=0, **SCORE_WITH_CRITIC
    )
    trainer = build_trainer(recipe)
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]
    trainer.model.train()
    trainer._generate_and_score_completions(rows)
    assert trainer._critique_tokens > 0  # the policy wrote critiques
    texts = [row["feedback_texts"][0] for row in rows]
    assert all(t.endswith(CritiqueFeedback.SUFFIX) for t in texts)
    assert trainer.feedback_provider.critic.stats.requests == 8  # one batch of 8 critiques in the round


@pytest.mark.parametrize("server", [[(200, "Check step 1.\nVerdict: incorrect", 0.0)]], indirect=True)
def test_feedback_critic_endpoint_batches_a_round(tmp_path, tiny_model_dir, server):
    recipe = write_recipe(
        tmp_path, tiny_model_dir, critic="endpoint", critic_url=server.url, critic_timeout=5.0, **SCORE_WITH_CRITIC
    )
    trainer = build_trainer(recipe)
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]
    trainer.model.train()
    trainer._generate_and_score_completions(rows)
    stats = trainer.feedback_provider.critic.stats
    assert stats.requests == 8 and len(server.requests) == 8 + stats.regenerated  # one round, asked concurrently
    agreed = sum(not row["attempt_correct"][0] for row in rows)  # "Verdict: incorrect" agrees with wrong answers
    assert trainer._metrics["train"]["selfcorrect/critique_agreement"] == [agreed / 8]
    trainer._generate_and_score_completions(rows)  # the next step logs its own round, not the running total
    assert trainer._metrics["train"]["selfcorrect/critique_fallback"] == [0.0, 0.0]
    assert (
        trainer._metrics["train"]["selfcorrect/critique_agreement"][1]
        == sum(not row["attempt_correct"][0] for row in rows) / 8
    )
    for row in rows:
        critique = "Check step 1.\nVerdict: incorrect" if not row["attempt_correct"][0] else None
        if critique:  # a critique that agrees with the checker is kept; one that disagrees falls back (indicative)
            assert row["feedback_texts"] == [critique + CritiqueFeedback.SUFFIX]


def test_feedback_critic_settings_are_checked_and_eval_defaults(tmp_path, tiny_model_dir):
    from selfcorrect.configs import RecipeError, parse_recipe

    bad = write_recipe(tmp_path, tiny_model_dir, critic="endpoint", **SCORE_WITH_CRITIC)
    with pytest.raises(RecipeError, match="critic_url"):
        parse_recipe(["--config", str(bad)])
    good = write_recipe(tmp_path, tiny_model_dir, critic="indicative_gt", **SCORE_WITH_CRITIC)
    _, _, script_args, _ = parse_recipe(["--config", str(good)])
    assert script_args.eval_feedback == "indicative_gt"
    with pytest.raises(RecipeError, match="eval_feedback: critic"):
        parse_recipe(["--config", str(good), "--eval_feedback", "critic"])


# --- in the trainer ----------------------------------------------------------------------------------------------------


def test_trainer_fails_before_training_when_the_endpoint_is_down(tmp_path, tiny_model_dir):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="critique_grpo",
        critic="endpoint",
        critic_url=url,
        critic_timeout=1.0,
        critic_on_error="raise",
    )
    with pytest.raises(CriticError, match="not reachable"):
        build_trainer(recipe)


@pytest.mark.parametrize("server", [[(200, "Nothing adds up.\nVerdict: incorrect", 0.0)]], indirect=True)
def test_trainer_uses_endpoint_critiques(tmp_path, tiny_model_dir, server):
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="critique_grpo",
        max_attempt_length=8,
        refine_groups="all",
        critic="endpoint",
        critic_url=server.url,
        critic_timeout=5.0,
    )
    trainer = build_trainer(recipe)
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]
    trainer.model.train()
    trainer._generate_and_score_completions(rows)
    critiqued = [row for row in rows if row["critique"]]
    assert critiqued and all(row["critique"] == "Nothing adds up.\nVerdict: incorrect" for row in critiqued)
    assert len(server.requests) == len(critiqued)
    assert trainer._metrics["train"]["selfcorrect/critique_agreement"] == [1.0]


# --- a real OpenAI-compatible server: `transformers serve` (the `serve` extra), offline on this CPU ------------------


@pytest.fixture(scope="module")
def transformers_server(tiny_model_dir):
    """`transformers serve` on the tiny local model (the same command `make critic-server` runs on the embedded one)."""
    pytest.importorskip("fastapi", reason="the `serve` extra: pip install -e '.[serve]'")
    pytest.importorskip("uvicorn", reason="the `serve` extra: pip install -e '.[serve]'")
    import os
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    port = _free_port()
    command = [str(Path(sys.executable).with_name("transformers")), "serve", str(tiny_model_dir), "--port", str(port)]
    command += ["--device", "cpu", "--dtype", "float32"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            pytest.fail(f"`{' '.join(command)}` did not start: {process.stderr.read()[-2000:]}")
        time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_endpoint_critic_against_transformers_serve(transformers_server):
    """Every request is answered by the real server (on_error="raise": any HTTP failure would raise), asked 4 at a
    time; the tiny random model writes no verdict line, so each critique is regenerated once, then indicative."""
    critic = EndpointCritic(transformers_server, max_tokens=8, timeout=60, concurrency=4, on_error="raise")
    critic.check()
    critiques = critic.critique([WRONG, RIGHT] * 4)
    assert len(critiques) == 8
    assert critic.stats.requests == 8 and critic.stats.errors == 0
    # 16 completions from the server: each request's critique had no verdict, was regenerated once, then replaced
    assert critic.stats.regenerated == 8 and critic.stats.no_verdict == 16 and critic.stats.fallbacks == 8
    assert [(c.source, c.tries, c.verdict) for c in critiques] == [
        ("fallback", 2, r.correct) for r in [WRONG, RIGHT] * 4
    ]


def test_feedback_critic_endpoint_in_training_against_transformers_serve(
    tmp_path, tiny_model_dir, transformers_server
):
    """`feedback: critic` + `critic: endpoint` as a recipe says it: one round of critiques from the real server."""
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        critic="endpoint",
        critic_url=transformers_server,
        critic_timeout=60.0,
        critic_on_error="raise",
        **SCORE_WITH_CRITIC,
    )
    trainer = build_trainer(recipe)
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]
    trainer.model.train()
    trainer._generate_and_score_completions(rows)
    stats = trainer.feedback_provider.critic.stats
    assert stats.requests == 8 and stats.errors == 0
    for row in rows:  # every first attempt is critiqued (SCoRe gives a second attempt to all)
        assert row["feedback_texts"][0].endswith(CritiqueFeedback.SUFFIX)
    metrics = trainer._metrics["train"]  # the random model writes no verdict: every critique falls back
    assert metrics["selfcorrect/critique_fallback"] == [1.0] and metrics["selfcorrect/critique_no_verdict"] == [1.0]
    assert metrics["selfcorrect/critique_errors"] == [0.0] and metrics["selfcorrect/critique_agreement"] == [0.0]

"""The local OpenAI-compatible server (tests/openai_server.py), driven by the real openai SDK."""
from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

from openai_server import OpenAIServer, embed_text


@pytest.fixture
def server():
    with OpenAIServer() as srv:
        yield srv
        assert srv.errors == [], "the test server raised inside its handler"


def make_client(server: OpenAIServer, **kwargs) -> openai.OpenAI:
    options = {"base_url": server.base_url, "api_key": server.api_key, "timeout": 2, "max_retries": 0}
    options.update(kwargs)
    return openai.OpenAI(**options)


@pytest.fixture
def client(server):
    with make_client(server) as c:
        yield c


def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def raw_request(server, method, path, body=None, headers=None):
    """A request made without the SDK, returning (status, parsed JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.base_url.rsplit("/v1", 1)[0] + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


# ----------------------------------------------------------------------------------------- lifecycle


def test_server_binds_a_free_local_port_and_stops():
    srv = OpenAIServer()
    assert srv.base_url is None
    srv.start()
    try:
        assert srv.base_url == f"http://127.0.0.1:{srv.port}/v1"
        assert srv.port > 0
        assert srv.api_key == "test-key"
    finally:
        srv.stop()
    srv.stop()  # idempotent


def test_requests_are_recorded_with_lower_cased_headers(server, client):
    client.models.list()
    (record,) = server.requests
    assert record["method"] == "GET"
    assert record["path"] == "/v1/models"
    assert record["json"] is None
    assert record["headers"]["authorization"] == "Bearer test-key"
    assert all(name == name.lower() for name in record["headers"])


# ---------------------------------------------------------------------------------------- embeddings


def test_embeddings_shape_determinism_and_usage(server, client):
    texts = ["The cat sat on the mat", "A dog barked"]
    first = client.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")
    second = client.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")

    assert first.object == "list"
    assert first.model == "text-embedding-3-small"
    assert [d.index for d in first.data] == [0, 1]
    assert all(d.object == "embedding" for d in first.data)
    assert all(len(d.embedding) == 64 for d in first.data)
    assert all(abs(math.sqrt(sum(v * v for v in d.embedding)) - 1) < 1e-9 for d in first.data)
    assert [d.embedding for d in first.data] == [d.embedding for d in second.data]
    assert first.data[0].embedding == embed_text("The cat sat on the mat")
    assert first.usage.prompt_tokens == first.usage.total_tokens == 9
    assert server.requests[-1]["json"]["encoding_format"] == "float"


def test_embeddings_of_texts_sharing_words_are_more_similar(client):
    query, related, unrelated = (
        client.embeddings.create(model="m", input=text, encoding_format="float").data[0].embedding
        for text in ("refund policy for orders", "Our REFUND policy covers all orders.", "weather in Paris today")
    )
    assert cosine(query, related) > cosine(query, unrelated) + 0.3


def test_embeddings_default_base64_request_is_decoded_by_the_sdk(server, client):
    # Without encoding_format the SDK asks for base64 and decodes the float32 bytes itself.
    result = client.embeddings.create(model="m", input="hello world", dimensions=16)
    assert server.requests[-1]["json"]["encoding_format"] == "base64"
    assert len(result.data[0].embedding) == 16
    expected = embed_text("hello world", 16)
    assert all(abs(a - b) < 1e-6 for a, b in zip(result.data[0].embedding, expected))


def test_embeddings_accept_token_lists(client):
    result = client.embeddings.create(model="m", input=[[1, 2, 3], [4, 5]], encoding_format="float")
    assert len(result.data) == 2
    assert result.usage.prompt_tokens == 5


def test_embeddings_reject_empty_input(client):
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="m", input="", encoding_format="float")


# ---------------------------------------------------------------------------------------------- chat


def test_chat_completion_echoes_a_lone_user_message(client):
    completion = client.chat.completions.create(model="gpt-4o-mini",
                                                messages=[{"role": "user", "content": "What is two plus two?"}])
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: What is two plus two?"
    assert choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens == 5
    assert completion.usage.completion_tokens == 6
    assert completion.usage.total_tokens == 11


def test_chat_completion_answers_rag_prompts_extractively(client):
    context = ("Refunds are issued within 14 days of a return. Shipping costs are not refunded. "
               "Contact support for exceptions.")
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "system", "content": "Answer from the context."},
        {"role": "system", "content": context},
        {"role": "user", "content": "How long do refunds take?"},
    ])
    assert completion.choices[0].message.content == "Refunds are issued within 14 days of a return."

    inline = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": (
        f"Context:\n{context}\n\nQuestion: How long do refunds take?")}])
    assert inline.choices[0].message.content == "Refunds are issued within 14 days of a return."


def test_chat_streaming_is_refused(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert info.value.status_code == 400


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids and "text-embedding-3-small" in ids


# --------------------------------------------------------------------------------- files, fine-tuning

TRAINING = b"".join(
    json.dumps({"messages": [{"role": "user", "content": f"question {i}"},
                             {"role": "assistant", "content": f"answer {i}"}]}).encode() + b"\n"
    for i in range(3)
)


def test_file_upload_retrieve_delete(client):
    uploaded = client.files.create(file=("train.jsonl", TRAINING), purpose="fine-tune")
    assert uploaded.id.startswith("file-")
    assert uploaded.object == "file"
    assert uploaded.bytes == len(TRAINING)
    assert uploaded.filename == "train.jsonl"
    assert uploaded.purpose == "fine-tune"
    assert uploaded.status == "processed"

    assert client.files.retrieve(uploaded.id).bytes == len(TRAINING)
    assert client.files.content(uploaded.id).content == TRAINING
    assert client.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_invalid_fine_tune_file_is_stored_with_an_error_status(client):
    bad = TRAINING + b'{"prompt": "no messages here"}\n'
    uploaded = client.files.create(file=("bad.jsonl", bad), purpose="fine-tune")
    assert uploaded.status == "error"
    assert "Line 4" in uploaded.status_details


def test_fine_tuning_job_lifecycle(server, client):
    training = client.files.create(file=("train.jsonl", TRAINING), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id, suffix="demo", seed=7,
                                         hyperparameters={"n_epochs": 2})
    assert job.object == "fine_tuning.job"
    assert job.id.startswith("ftjob-")
    assert job.status == "validating_files"
    assert job.training_file == training.id
    assert job.hyperparameters.n_epochs == 2
    assert job.seed == 7
    assert job.fine_tuned_model is None and job.trained_tokens is None
    assert job.organization_id == "org-test"

    statuses = [client.fine_tuning.jobs.retrieve(job.id).status for _ in range(5)]
    assert statuses == ["queued", "running", "running", "running", "succeeded"]
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded"
    assert done.fine_tuned_model == f"ft:gpt-4o-mini:test-org:demo:{job.id[-8:]}"
    assert done.trained_tokens > 0
    assert done.finished_at is not None

    events = list(client.fine_tuning.jobs.list_events(job.id))
    assert all(e.object == "fine_tuning.job.event" for e in events)
    metrics = [e.data for e in reversed(events) if e.type == "metrics"]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    losses = [m["train_loss"] for m in metrics]
    assert losses == sorted(losses, reverse=True) and len(set(losses)) == 3
    assert all({"valid_loss", "train_mean_token_accuracy"} <= set(m) for m in metrics)

    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert sorted(c.step_number for c in checkpoints) == [1, 2, 3]
    assert all(c.object == "fine_tuning.job.checkpoint" and c.fine_tuning_job_id == job.id for c in checkpoints)
    assert all(c.metrics.train_loss is not None and c.metrics.full_valid_loss is not None for c in checkpoints)

    page = client.fine_tuning.jobs.list()
    assert [j.id for j in page.data] == [job.id] and page.has_more is False
    assert done.fine_tuned_model in [m.id for m in client.models.list()]

    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)


def test_fine_tuning_job_cancel_and_unknown_file(server, client):
    server.running_steps = 1
    training = client.files.create(file=("train.jsonl", TRAINING), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "queued"
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    assert list(client.fine_tuning.jobs.checkpoints.list(job.id)) == []

    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-does-not-exist")
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-unknown")


def test_job_on_an_invalid_file_fails_validation(client):
    bad = client.files.create(file=("bad.jsonl", b"not json\n"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=bad.id)
    failed = client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed"
    assert failed.error.code == "invalid_training_file"


# ----------------------------------------------------------------------------------- errors, faults


def test_wrong_api_key_raises_authentication_error(server):
    with make_client(server, api_key="wrong") as bad_client, pytest.raises(openai.AuthenticationError) as info:
        bad_client.models.list()
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"


def test_unknown_path_is_an_openai_style_404(server):
    status, body = raw_request(server, "GET", "/v1/nothing-here", headers={"Authorization": "Bearer test-key"})
    assert status == 404
    assert body["error"]["type"] == "invalid_request_error"
    status, body = raw_request(server, "GET", "/v1/models")  # no key
    assert status == 401
    assert body == {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                              "param": None, "code": "invalid_api_key"}}


def test_rate_limit_is_retried_by_the_sdk(server):
    server.inject({"status": 429, "retry_after": 0})
    with make_client(server, max_retries=2) as retrying:
        result = retrying.embeddings.create(model="m", input="hello", encoding_format="float")
    assert len(result.data) == 1
    assert len(server.requests) == 2
    assert server.requests[1]["headers"]["x-stainless-retry-count"] == "1"


def test_server_error_raises_without_retries(server, client):
    server.inject({"status": 500})
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 500
    server.inject("503")
    with pytest.raises(openai.InternalServerError) as info:
        client.models.list()
    assert info.value.status_code == 503
    assert len(server.requests) == 2


def test_slow_answer_raises_timeout(server, client):
    server.inject({"type": "timeout", "delay": 2})
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.5).embeddings.create(model="m", input="hi", encoding_format="float")
    assert time.monotonic() - started < 1.5


def test_slow_answer_within_the_timeout_succeeds(server, client):
    server.inject({"type": "timeout", "delay": 0.2})
    assert client.models.list().data


def test_malformed_body_raises_json_decode_error(server, client):
    # The SDK calls response.json() on a 200 application/json body and lets the decoder error through.
    server.inject("malformed")
    with pytest.raises(json.JSONDecodeError):
        client.models.list()


def test_dropped_connection_raises_connection_error(server, client):
    server.inject("drop")
    with pytest.raises(openai.APIConnectionError) as info:
        client.models.list()
    assert not isinstance(info.value, openai.APITimeoutError)


def test_wrong_shape_parses_into_an_empty_model(server, client):
    # The SDK does not validate responses by default: missing fields come back as None.
    server.inject("wrong_shape")
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices is None


def test_faults_are_consumed_per_request_and_can_target_a_path(server, client):
    server.inject("500", times=2, path="/chat")
    assert client.models.list().data  # not targeted
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices

    server.inject("drop", times=5)
    server.clear_faults()
    assert client.models.list().data


def test_stop_is_prompt_while_a_timeout_fault_sleeps():
    srv = OpenAIServer().start()
    srv.inject({"type": "timeout", "delay": 30})
    outcome = {}

    def call():
        with make_client(srv, timeout=30) as slow:
            try:
                slow.models.list()
            except openai.APIConnectionError as err:
                outcome["error"] = err

    caller = threading.Thread(target=call)
    caller.start()
    while not srv.requests:
        time.sleep(0.01)
    started = time.monotonic()
    srv.stop()
    caller.join(timeout=5)
    assert time.monotonic() - started < 2
    assert not caller.is_alive()
    assert isinstance(outcome.get("error"), openai.APIConnectionError)


# ------------------------------------------------------------------------------ hostile answers


@pytest.mark.timeout(30)
def test_trickle_sends_a_complete_answer_slowly_so_per_read_timeouts_never_fire(server):
    # Each gap (0.05 s) is under the SDK's per-read timeout (0.3 s), so the SDK waits for the whole answer.
    server.inject({"type": "trickle", "interval": 0.05, "chunk": 40, "pad": 200})
    with make_client(server, timeout=0.3) as c:
        result = c.embeddings.create(model="m", input="hello", encoding_format="float")
    assert result.data[0].embedding == embed_text("hello")
    server.inject({"type": "trickle", "interval": 0.05, "chunk": 60, "headers": True})
    with make_client(server, timeout=0.3) as c:
        assert [m.id for m in c.models.list()][:2] == ["gpt-4o-mini", "gpt-4o"]


@pytest.mark.timeout(30)
def test_trickle_stops_when_the_client_hangs_up(server):
    server.inject({"type": "trickle", "interval": 0.05, "pad": 100_000})
    with make_client(server, timeout=0.3, max_retries=0) as c, c.with_streaming_response.models.list() as resp:
        assert resp.status_code == 200
        next(resp.iter_bytes())
    while server.open_connections:  # the handler notices the closed socket at its next write
        time.sleep(0.02)


def test_wrong_dimension_for_one_input(server, client):
    server.inject({"type": "embedding_dimensions", "dimensions": 7, "index": 1})
    result = client.embeddings.create(model="m", input=["a", "b", "c"], encoding_format="float")
    assert [len(d.embedding) for d in result.data] == [64, 7, 64]
    assert result.data[1].embedding == embed_text("b")[:7]


def test_ragged_vectors(server, client):
    server.inject("ragged_embeddings")
    result = client.embeddings.create(model="m", input=["a", "b", "c", "d"], encoding_format="float")
    assert [len(d.embedding) for d in result.data] == [64, 63, 64, 63]


@pytest.mark.parametrize("value, check", [("nan", math.isnan), ("inf", lambda v: v == math.inf),
                                          ("-inf", lambda v: v == -math.inf), (1e39, lambda v: v == 1e39)])
def test_non_finite_vector_values(server, client, value, check):
    server.inject({"type": "nonfinite_embedding", "value": value, "index": 0, "position": 3})
    result = client.embeddings.create(model="m", input=["a", "b"], encoding_format="float")
    assert check(result.data[0].embedding[3])
    assert result.data[1].embedding == embed_text("b")


def test_absurd_usage(server, client):
    server.inject({"type": "usage", "prompt_tokens": 1e30, "completion_tokens": -5})
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert completion.usage.prompt_tokens == 1e30 and completion.usage.completion_tokens == -5
    assert completion.choices[0].message.content == "Echo: hi"
    server.inject({"type": "usage", "prompt_tokens": None}, path="/embeddings")
    assert client.embeddings.create(model="m", input="a b", encoding_format="float").usage.prompt_tokens is None


def test_null_content_and_no_choices(server, client):
    server.inject("null_content")
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content is None and completion.choices[0].finish_reason == "stop"
    server.inject("no_choices")
    assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices == []


def test_echo_auth_puts_the_authorization_header_in_a_400(server, client):
    server.inject({"type": "echo_auth", "status": 400})
    with pytest.raises(openai.BadRequestError) as info:
        client.models.list()
    assert "Bearer test-key" in info.value.message

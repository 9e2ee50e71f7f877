"""A fake OpenAI-compatible chat completions endpoint with structured outputs, per ../shared/apis/openai.md.

Also POST /v1/embeddings (unit vectors from hashed words, so texts sharing words are near; 1,536 or 3,072
dimensions by model; at most 2,048 non-empty inputs). Bearer auth (401 with an `error` body otherwise); POST
/v1/chat/completions must carry a model and messages; with a response format it must be a strict
`json_schema` one and the answer's `content` is JSON, without one the answer is plain text. Its
default reading of a transcript is a crude keyword pass; tests can queue answers instead: a dict (sent as the
JSON content), or one of "invalid", "refusal", "length", "429", "500".
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "sk-fake-openai-key-000000000000000000"
COMPETITORS = ["AppFolio", "Yardi", "RealPage", "Buildium", "Entrata"]
RISK_WORDS = {
    "churn_intent": r"cancel|not be renewing|end our contract|switching",
    "pricing": r"price|expensive|rate",
    "budget": r"budget|spending freeze|cutting costs",
    "implementation": r"broken|failed|errors|outages|not working|bugs",
    "competitor_evaluation": r"demo with|quoted|RFP|comparing",
}


@dataclass
class OpenAIState:
    answers: list[Any] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> Any:
        with self._lock:
            return self.answers.pop(0) if self.answers else None


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status, headers={"retry-after": "0"} if status == 429 else None)


def read_transcript(prompt: str) -> dict[str, Any]:
    """A crude but deterministic reading of the tab-separated transcript lines the analyst sends."""
    speakers: dict[str, list[float]] = {}
    mentions, risks = [], []
    for row in prompt.splitlines():
        parts = row.split("\t")
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        number, _, who, text = int(parts[0]), parts[1], parts[2], parts[3]
        speaker = who.split(" ", 1)[0]
        negative = bool(re.search(r"frustrat|disappoint|cancel|broken|unacceptable|rough|expensive", text, re.I))
        speakers.setdefault(speaker, []).append(-0.6 if negative else 0.3)
        mentions += [{"line": number, "competitor": c} for c in COMPETITORS if c.lower() in text.lower()]
        if "External" in who:
            risks += [{"line": number, "kind": k} for k, rx in RISK_WORDS.items() if re.search(rx, text, re.I)]
    return {
        "speakers": [{"speaker_id": s, "sentiment": sum(v) / len(v)} for s, v in speakers.items()],
        "competitor_mentions": mentions,
        "risk_factors": risks,
        "summary": "The client discussed the account.",
    }


EMBEDDING_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}


def hashed_embedding(text: str, size: int) -> list[float]:
    """A deterministic unit vector: words hashed into buckets, so texts sharing words point alike."""
    vector = [0.0] * size
    for word in re.findall(r"\w+", text.lower()):
        bucket = int(hashlib.sha256(word.encode()).hexdigest(), 16)
        vector[bucket % size] += 1.0 if (bucket >> 20) % 2 else -1.0
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [x / norm for x in vector]


def openai_app(state: OpenAIState) -> Starlette:
    async def completions(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        body = await request.json()
        state.requests.append(body)
        fmt = body.get("response_format") or {}
        if not body.get("model") or not body.get("messages"):
            return _error(400, "model and messages are required", "invalid_request_error")
        if fmt and (fmt.get("type") != "json_schema" or not (fmt.get("json_schema") or {}).get("strict")):
            return _error(400, "this fake expects a strict json_schema response_format", "invalid_request_error")
        answer = state.next_answer()
        if not fmt and answer not in ("429", "500"):  # a plain text answer: queued text, or one citing the prompt
            cited = re.findall(r"\[([A-Z]\d+)\]", body["messages"][-1]["content"])
            text = answer if isinstance(answer, str) else f"From the evidence [{cited[0] if cited else '?'}]."
            return JSONResponse({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
            })  # fmt: skip
        if answer == "429":
            return _error(429, "Rate limit reached", "requests", "rate_limit_exceeded")
        if answer == "500":
            return _error(500, "The server had an error", "server_error")
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        if answer == "refusal":
            message["refusal"] = "I can't help with that."
        elif answer == "invalid":
            message["content"] = '{"speakers": "lots"}'
        elif answer == "length":
            message["content"] = '{"speakers": [{"speaker_id": "1", "sent'
            finish = "length"
        else:
            reading = answer if isinstance(answer, dict) else read_transcript(body["messages"][-1]["content"])
            message["content"] = json.dumps(reading)
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
            }
        )

    async def model(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        name = request.path_params["name"]
        if name not in ("gpt-test", "gpt-4o-mini"):
            return _error(404, f"The model '{name}' does not exist", "invalid_request_error", "model_not_found")
        return JSONResponse({"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "fake"})

    async def embeddings(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        body = await request.json()
        state.requests.append(body)
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if body.get("model") not in EMBEDDING_DIMENSIONS:
            return _error(404, f"The model '{body.get('model')}' does not exist", "invalid_request_error",
                          "model_not_found")  # fmt: skip
        if not isinstance(inputs, list) or not inputs or len(inputs) > 2048 or any(not str(t).strip() for t in inputs):
            return _error(400, "'input' must be 1 to 2048 non-empty strings", "invalid_request_error")
        answer = state.next_answer()
        if answer in ("429", "500"):
            return _error(int(answer), "Rate limit reached" if answer == "429" else "The server had an error",
                          "requests" if answer == "429" else "server_error")  # fmt: skip
        size = EMBEDDING_DIMENSIONS[body["model"]]
        data = [{"object": "embedding", "index": i, "embedding": hashed_embedding(str(t), size)}
                for i, t in enumerate(inputs)]  # fmt: skip
        return JSONResponse({"object": "list", "data": data, "model": body["model"],
                             "usage": {"prompt_tokens": 8 * len(inputs), "total_tokens": 8 * len(inputs)}})  # fmt: skip

    return Starlette(
        routes=[
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/models/{name}", model, methods=["GET"]),
        ]
    )

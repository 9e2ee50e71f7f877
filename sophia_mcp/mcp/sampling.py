"""The client's own model on the MCP surface, and the one choice between it and the configured model.

A tool that may have the client's model write declares a resolver saying what to ask (an `Asking`), and takes the
writer `clients_model(that resolver)` makes: the SDK asks the client before the body runs (mid-call on a 2025-11-25
session, all parts in one `InputRequiredResult` round on 2026-07-28), and the body gets a `SampledWriter` holding
the answers, or None when the configured model is to write instead.
"""

# No `from __future__ import annotations`: the resolvers `clients_model` makes name, in their annotations, resolvers
# local to it, which the SDK can read only from annotations already evaluated.

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, Resolve, Sample
from mcp_types import CreateMessageResult

from sophia_mcp.adapters.model_analyst import ModelAnalyst
from sophia_mcp.adapters.sampling_writer import SampledWriter, sample_of
from sophia_mcp.analysis.model_reading import reading_requests
from sophia_mcp.domain.writing import WritingRequest
from sophia_mcp.errors import SophiaError
from sophia_mcp.mcp.server import offers, services_of
from sophia_mcp.ports.analyst import Analyst
from sophia_mcp.ports.writer import Writer

# Requests of one tool call asked of the client's model at most; a call's transcript longer than this many parts is
# read by the configured analyst. One resolver per part: independent, so on 2026-07-28 all are asked in one round.
MAX_PARTS = 4
# Whose model writes: the settings' choice (the analyst's), or `auto` where there is no setting (the synthesis).
ModelChoice = Literal["local", "openai", "sampling", "auto"]
Sampled = CreateMessageResult | None


@dataclass(frozen=True)
class Asking:
    """What to ask the client's model in one tool call, or why it is not asked."""

    wanted: bool  # the choice is the client's model (sampling, or auto with sampling offered)
    requests: list[WritingRequest] = field(default_factory=list)
    unavailable: str | None = None


def unasked(ctx: Context[Any, Any], choice: ModelChoice) -> Asking | None:
    """The one choice between the client's model and the configured one: None when the client's model is to be
    asked (chosen, or `auto`, and the client offers sampling); otherwise the `Asking` that stands instead, saying
    why when the client's model was chosen but cannot be asked."""
    offered = offers(ctx, "sampling")
    if choice in ("sampling", "auto") and offered:
        return None
    if choice == "sampling":
        return Asking(wanted=True, unavailable="the client does not offer sampling")
    return Asking(wanted=False)


def clients_model(asking: Callable[..., Awaitable[Asking]]) -> Callable[..., Awaitable[Writer | None]]:
    """A resolver for the client's model as a writer of what `asking` (a resolver) says to ask: a `SampledWriter`
    with the client's answers (or with why it was not asked, when it was chosen), or None when not chosen."""

    def part(index: int) -> Callable[..., Awaitable[Sample | None]]:
        async def sample_part(asked: Annotated[Asking, Resolve(asking)]) -> Sample | None:
            """Request `index` of the call, asked of the client's model; nothing when there is no such request."""
            return sample_of(asked.requests[index]) if index < len(asked.requests) else None

        return sample_part

    part_1, part_2, part_3, part_4 = (part(i) for i in range(MAX_PARTS))

    async def model(
        asked: Annotated[Asking, Resolve(asking)],
        answer_1: Annotated[Sampled, Resolve(part_1)],
        answer_2: Annotated[Sampled, Resolve(part_2)],
        answer_3: Annotated[Sampled, Resolve(part_3)],
        answer_4: Annotated[Sampled, Resolve(part_4)],
    ) -> Writer | None:
        if not asked.wanted:
            return None
        answers = [answer_1, answer_2, answer_3, answer_4]
        by_prompt = {r.prompt: a for r, a in zip(asked.requests, answers, strict=False) if a is not None}
        return SampledWriter(by_prompt, asked.unavailable)

    return model


def writers(clients: Writer | None, configured: Writer | None) -> list[Writer]:
    """Who writes a text, in the order tried: the client's model when it was asked, then the configured one."""
    return [w for w in (clients, configured) if w is not None]


async def transcript_asking(ctx: Context[Any, Any], call_id: str) -> Asking:
    """Resolver for a tool taking `call_id`: the transcript's parts to ask the client's model, when the analyst
    setting wants it and the client offers sampling. It never fails the call: a call it cannot read is left to the
    workflow, which reports it in its run."""
    services = services_of(ctx)
    skipped = unasked(ctx, services.settings.analyst.backend)
    if skipped is not None:
        return skipped
    try:
        call = await services.calls.get_call(call_id)
        transcript = await services.calls.get_transcript(call_id)
    except SophiaError as exc:
        return Asking(wanted=True, unavailable=str(exc))
    max_chars = services.settings.openai.max_input_chars
    requests = reading_requests(call, transcript, services.settings.competitors, max_chars)
    if len(requests) > MAX_PARTS:
        why = f"the transcript is {len(requests)} parts of {max_chars} characters, over the {MAX_PARTS} asked at most"
        return Asking(wanted=True, unavailable=why)
    return Asking(wanted=True, requests=requests)


transcript_reader = clients_model(transcript_asking)


async def analyst_for(ctx: Context[Any, Any], model: Annotated[Writer | None, Resolve(transcript_reader)]) -> Analyst:
    """Resolver: the analyst for this call. The client's own model when sampling is chosen (or `auto`) and offered,
    from its answers to the transcript's parts; when sampling is chosen but cannot be used, the configured analyst
    stands in and says why."""
    services = services_of(ctx)
    if model is None:
        return services.analyst
    max_chars = services.settings.openai.max_input_chars
    return ModelAnalyst(model, services.settings.competitors, fallback=services.analyst, max_chars=max_chars)

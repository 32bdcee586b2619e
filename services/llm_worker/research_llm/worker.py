"""Entry point of the LLM pool: hosts the model steps (triage, clarify, plan, reflect,
synthesize, review, revise) only."""

from __future__ import annotations

import asyncio

import structlog
from agents import Model
from temporalio.client import Client
from temporalio.worker import Worker

from research_llm.activities import LlmActivities, ModelSource
from research_shared.logs import configure_logging
from research_shared.payloads import open_payloads
from research_shared.recorded_calls import CallRecorder
from research_shared.serving import (
    activity_worker,
    check_payload_store,
    connect_worker,
    run_until_signalled,
    serve_probes,
)
from research_shared.settings import (
    LlmProviderName,
    LlmSettings,
    PayloadSettings,
    QueueSettings,
    TemporalSettings,
    WorkerSettings,
)

log = structlog.get_logger(__name__)


class OfflineModels:
    """The offline model for every step, whatever model name is configured."""

    name = "offline"

    def model_for(self, model_name: str) -> Model:
        from research_llm.providers.offline import OfflineModel

        return OfflineModel()

    async def aclose(self) -> None:
        return None


def build_models(settings: LlmSettings, recorder: CallRecorder | None = None) -> ModelSource:
    """An OpenAI-compatible endpoint when a key is set (or asked for), else the offline model.

    With a `recorder`, the endpoint's answers are recorded so that a retried attempt does
    not pay for them again; the offline model costs nothing and records nothing.
    """
    if settings.resolved_provider() is LlmProviderName.OPENAI:
        from research_llm.providers.openai_compatible import OpenAICompatibleModels

        # With no key, OPENAI_BASE_URL names a local server (vLLM, Ollama, llama.cpp); the
        # settings refuse an explicit openai provider with neither when they load.
        return OpenAICompatibleModels(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            api=settings.openai_api,
            timeout=settings.openai_timeout_seconds,
            recorder=recorder,
        )
    return OfflineModels()


def build_worker(
    client: Client,
    models: ModelSource,
    llm: LlmSettings,
    queues: QueueSettings,
    settings: WorkerSettings,
) -> Worker:
    plan_model, synthesize_model = llm.plan_model, llm.synthesize_model
    if isinstance(models, OfflineModels):
        from research_llm.providers.offline import OFFLINE_MODEL_NAME

        plan_model = synthesize_model = OFFLINE_MODEL_NAME
    activities = LlmActivities(
        models,
        plan_model=plan_model,
        synthesize_model=synthesize_model,
        heartbeat_seconds=llm.heartbeat_seconds,
        prices=llm.price_table(),
    )
    return activity_worker(
        client,
        settings,
        queues.llm_queue,
        [
            activities.triage,
            activities.clarify,
            activities.plan,
            activities.reflect,
            activities.synthesize,
            activities.review,
            activities.revise,
        ],
        llm.llm_rate_limit,
    )


async def run() -> None:
    from research_llm.providers.openai_compatible import configure_agents_sdk

    # Every setting is read before anything starts, so a bad one stops the process at once.
    settings, llm = WorkerSettings(), LlmSettings()
    temporal, queues = TemporalSettings(), QueueSettings()
    payloads = open_payloads(PayloadSettings())
    configure_logging(settings.log_level, settings.log_format, service="llm-worker")
    configure_agents_sdk()
    async with serve_probes(settings) as health:
        try:
            await check_payload_store(payloads)
            models = build_models(llm, CallRecorder(payloads.records, "openai"))
            log.info("model provider ready", provider=models.name)
            try:
                client = await connect_worker(temporal, settings, payloads.converter)
                worker = build_worker(client, models, llm, queues, settings)
                await run_until_signalled(worker, "llm", health, **payloads.describe())
            finally:
                await models.aclose()
        finally:
            await payloads.aclose()


def main() -> None:
    asyncio.run(run())

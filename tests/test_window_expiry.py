"""The correlation and duplicate windows age out on a task of their own, every
`pipeline.expire_interval_seconds`, whatever `logging.progress_interval_seconds` says."""

from __future__ import annotations

import asyncio

from consumer.app import Service
from consumer.config import Settings
from consumer.eventhub import Receiver
from tests.test_pipeline import NOW, body, sms

CONNECTION = "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=k;SharedAccessKey=s;EntityPath=hub"


def test_windows_expire_on_their_own_interval_not_the_progress_logs() -> None:
    settings = Settings.model_validate({
        "eventhub": {"connection_string": CONNECTION},
        "checkpoint_store": {"connection_string": "UseDevelopmentStorage=true"},
        "pipeline": {"expire_interval_seconds": 0.05, "correlation_max_age_seconds": 60},
        "logging": {"progress_interval_seconds": 3600},
    })
    service = Service(settings)
    later = NOW + 61  # the send below is then over age
    receiver = Receiver(settings, service.pipeline, service.metrics, None, None, clock=lambda: later)
    service.pipeline.process(body(sms(MessageId="s1")), NOW)
    assert len(service.pipeline.correlator) == 1

    async def scenario() -> None:
        expiring = asyncio.create_task(service._expire_windows(receiver))
        try:
            for _ in range(100):  # at most 5 s
                if len(service.pipeline.correlator) == 0:
                    break
                await asyncio.sleep(0.05)
        finally:
            expiring.cancel()
        assert len(service.pipeline.correlator) == 0

    try:
        asyncio.run(scenario())
    finally:
        receiver.worker.close()


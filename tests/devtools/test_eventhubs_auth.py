"""The local endpoint can require a SAS key, as the service does: the real SDK signs its token with the
connection string's key; a token signed with another key is refused on $cbs (401, the SDK's
AuthenticationError), and entity links and management requests need a valid token first."""

from __future__ import annotations

import pytest
from azure.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient
from azure.eventhub.exceptions import AuthenticationError

from acs_sms_devtools.eventhubs import EventHubsEndpoint


@pytest.fixture()
def keyed():
    with EventHubsEndpoint("hub", 2, sas_key="the-right-key") as endpoint:
        yield endpoint


def with_key(endpoint: EventHubsEndpoint, key: str) -> str:
    return endpoint.connection_string.replace("SharedAccessKey=the-right-key", f"SharedAccessKey={key}")


def test_the_right_key_reads_and_sends(keyed: EventHubsEndpoint) -> None:
    assert "SharedAccessKey=the-right-key;" in keyed.connection_string
    with EventHubProducerClient.from_connection_string(keyed.connection_string) as producer:
        assert producer.get_partition_ids() == ["0", "1"]
        producer.send_batch([EventData("x")], partition_id="0")
    assert keyed.event_count() == 1


def test_another_key_is_refused_with_the_services_answer(keyed: EventHubsEndpoint) -> None:
    client = EventHubConsumerClient.from_connection_string(with_key(keyed, "a-wrong-key"), consumer_group="$Default",
                                                           retry_total=0)
    with client, pytest.raises(AuthenticationError) as info:
        client.get_partition_ids()
    assert "401" in str(info.value) and "InvalidSignature" in str(info.value)
    with EventHubProducerClient.from_connection_string(with_key(keyed, "a-wrong-key"), retry_total=0) as producer:
        with pytest.raises(AuthenticationError):
            producer.send_batch([EventData("x")], partition_id="0")
    assert keyed.event_count() == 0


def test_the_required_key_changes_while_serving(keyed: EventHubsEndpoint) -> None:
    old = with_key(keyed, "the-old-key")
    with EventHubConsumerClient.from_connection_string(old, consumer_group="$Default", retry_total=0) as client:
        with pytest.raises(AuthenticationError):
            client.get_partition_ids()
    keyed.require_key("the-old-key")
    with EventHubConsumerClient.from_connection_string(old, consumer_group="$Default", retry_total=0) as client:
        assert client.get_partition_ids() == ["0", "1"]
    keyed.require_key(None)  # any key again
    with EventHubConsumerClient.from_connection_string(with_key(keyed, "anything"), consumer_group="$Default") as client:
        assert client.get_partition_ids() == ["0", "1"]


@pytest.mark.parametrize("key", [None, "the-right-key"])
def test_a_token_for_a_hub_that_does_not_exist_gets_404(eventhubs_factory, key) -> None:
    """As the service answers put-token for a missing entity (with or without a key required)."""
    endpoint = eventhubs_factory(hub="hub", partitions=1, sas_key=key)
    other = endpoint.connection_string.replace("EntityPath=hub", "EntityPath=no-such-hub")
    with EventHubConsumerClient.from_connection_string(other, consumer_group="$Default", retry_total=0) as client:
        with pytest.raises(AuthenticationError) as info:
            client.get_partition_ids()
    assert "Status code: 404" in str(info.value)
    assert f"The messaging entity 'sb://127.0.0.1:{endpoint.port}/no-such-hub' could not be found." in str(info.value)

import socket

from prometheus_client import CollectorRegistry, Counter, generate_latest

from acs_sms_devtools.scrape import free_port, parse, total


def test_parse_and_total_of_a_real_exposition():
    registry = CollectorRegistry()
    events = Counter("acs_consumer_events", "events", ("partition",), registry=registry)
    events.labels("0").inc(3)
    events.labels("1").inc(4)
    samples = parse(generate_latest(registry).decode())
    assert samples[("acs_consumer_events_total", (("partition", "0"),))] == 3
    assert total(samples, "acs_consumer_events_total") == 7
    assert total(samples, "acs_consumer_events_total", partition="1") == 4
    assert total(samples, "acs_consumer_events_total", partition="2") == 0
    assert total(samples, "no_such_family") == 0


def test_free_port_is_bindable_on_localhost():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))

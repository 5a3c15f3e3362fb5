"""The vocabulary of the synthetic traffic: operation names, status codes and their descriptions,
the default mixes, and the fictional number ranges, senders and networks the records are made of."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from consumer.labels import RECEIVED, SENT

__all__ = [
    "OPT_OUT", "OPT_IN", "CHAT_OPERATIONAL", "API_VERSION", "SUCCEEDED", "FAILED", "DEFAULT_COUNTRIES",
    "DEFAULT_NUMBER_TYPES", "DEFAULT_START", "DEFAULT_RESOURCE_ID", "SECOND_RESOURCE_ID", "ENDPOINT_HOST", "ACTIVITY_MIX",
    "SEND_FAILURES", "DELIVERY_STATUS", "DELIVERY_FAILURE_WEIGHTS", "CALLING_CODES", "US_AREA_CODES",
    "CA_AREA_CODES", "TOLL_FREE_CODES", "ALPHA_SENDERS", "SDKS", "DOC_NETWORKS", "OPT_OUT_WORDS",
    "OPT_IN_WORDS", "CHAT_OPERATIONS", "DELIVERY_REPORT_URI", "INBOUND_URI", "MAX_DELIVERY_DELAY",
    "TICKS_PER_SECOND",
]

#: Assumed operation names for opt-out / opt-in (ACS says they are logged, not under which name).
OPT_OUT: Final = "SMSOptOutReceived"
OPT_IN: Final = "SMSOptInReceived"
#: A category the consumer does not parse, so that `skipped` counts are exercised.
CHAT_OPERATIONAL: Final = "ChatOperational"

API_VERSION: Final = "2021-03-07"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"

DEFAULT_COUNTRIES: Final[Mapping[str, float]] = {"US": 70, "CA": 10, "GB": 10, "FR": 10}
DEFAULT_NUMBER_TYPES: Final[Mapping[str, float]] = {
    "LongCodeNumber": 55,
    "TollFreeNumber": 25,
    "ShortCodeNumber": 15,
    "DynamicAlphaSenderID": 5,
}
#: Fixed so that the pure generator is deterministic; `publish` replaces it with the wall clock.
DEFAULT_START: Final = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
DEFAULT_RESOURCE_ID: Final = (
    "/SUBSCRIPTIONS/6F1A2B3C-4D5E-4F60-8A7B-9C0D1E2F3A4B/RESOURCEGROUPS/RG-SMS-DEMO"
    "/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/ACS-SMS-DEMO"
)
#: A second resource sending to the same hub (as organisations point prod and test, or regions, at one
#: hub): by default two activities in three come from the first resource, one from this one.
SECOND_RESOURCE_ID: Final = (
    "/SUBSCRIPTIONS/6F1A2B3C-4D5E-4F60-8A7B-9C0D1E2F3A4B/RESOURCEGROUPS/RG-SMS-DEMO"
    "/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/ACS-SMS-DEMO-EU"
)
ENDPOINT_HOST: Final = "acs-sms-demo.communication.azure.com"

#: Share of "activities" (a send with its consequences, an incoming message, ...). Not an option: the
#: brief is a realistic mix; `rate` and `failure_ratio` are the knobs people turn.
ACTIVITY_MIX: Final[Mapping[str, float]] = {
    SENT: 0.82,
    RECEIVED: 0.10,
    OPT_OUT: 0.025,
    OPT_IN: 0.01,
    CHAT_OPERATIONAL: 0.045,
}

#: HTTP status of failed sends → (weight, resultDescription, level).
SEND_FAILURES: Final[Mapping[int, tuple[float, str, str]]] = {
    400: (0.30, "Bad request: the To phone number is not a valid E.164 number", "Error"),
    401: (0.10, "Unauthorized: the access key or token is not valid", "Error"),
    429: (0.40, "Too many requests: the sender exceeded its throughput limit", "Warning"),
    500: (0.20, "Internal server error", "Error"),
}

#: ACS delivery status codes (Event Grid `DeliveryStatusDetails`) → description.
DELIVERY_STATUS: Final[Mapping[int, str]] = {
    2000: "Delivered",
    4000: "Message rejected due to fraud detection",
    4001: "Message rejected due to an invalid Source/From number format",
    4002: "Message rejected due to an invalid Destination/To number format",
    4003: "Message rejected due to an unsupported destination",
    4004: "Message rejected as the destination number does not exist",
    4005: "Message blocked by the destination carrier",
    4006: "Destination number is not reachable",
    4007: "Destination number has opted out of messages from this sender",
    4008: "Exceeded the maximum message count for the sender profile (rate limit)",
    4009: "Message blocked by the Microsoft entitlement system",
    4010: "Message blocked because the toll-free number is not verified",
    4020: "Message blocked because it exceeded volumetric limits",
    5000: "Message failed to deliver; contact Microsoft support",
    5001: "Message failed to deliver due to a temporary unavailability of the carrier",
    5002: "Carrier does not support delivery reports",
    9999: "Message failed to deliver due to an unknown error",
}
#: Relative frequency of each failure code among failed delivery reports.
DELIVERY_FAILURE_WEIGHTS: Final[Mapping[int, float]] = {
    4000: 1, 4001: 1, 4002: 3, 4003: 2, 4004: 10, 4005: 8, 4006: 14, 4007: 6, 4008: 3,
    4009: 1, 4010: 4, 4020: 2, 5000: 2, 5001: 4, 5002: 3, 9999: 5,
}

CALLING_CODES: Final[Mapping[str, str]] = {
    "US": "1", "CA": "1", "PR": "1", "GB": "44", "FR": "33", "DE": "49", "ES": "34", "IT": "39",
    "NL": "31", "BE": "32", "CH": "41", "AT": "43", "IE": "353", "PT": "351", "SE": "46",
    "NO": "47", "DK": "45", "FI": "358", "PL": "48", "AU": "61", "NZ": "64", "IN": "91", "JP": "81",
    "BR": "55", "MX": "52", "ZA": "27", "SG": "65",
}
US_AREA_CODES: Final = ("206", "212", "312", "415", "425", "512", "617", "702", "919")
CA_AREA_CODES: Final = ("416", "514", "604", "613", "780")
TOLL_FREE_CODES: Final = ("800", "833", "844", "855", "866", "877", "888")
ALPHA_SENDERS: Final = ("CONTOSO", "FABRIKAM", "Woodgrove", "Tailspin")
SDKS: Final = (
    ("azsdk-net-Communication.Sms", "Microsoft Windows 10.0.20348"),
    ("azsdk-python-communication-sms", "Linux-5.15.0-1057-azure-x86_64-with-glibc2.35"),
    ("azsdk-js-communication-sms", "Node/18.19.0 (linux; x64)"),
    ("azsdk-java-azure-communication-sms", "Java/17.0.9 (Linux; amd64)"),
    ("", ""),  # plain REST calls carry no SDK user agent
)
DOC_NETWORKS: Final = ("192.0.2.", "198.51.100.", "203.0.113.")  # RFC 5737
OPT_OUT_WORDS: Final = ("STOP", "STOP", "STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "STOPALL")
OPT_IN_WORDS: Final = ("START", "START", "UNSTOP", "YES")
CHAT_OPERATIONS: Final = (
    ("SendMessage", 201), ("ListMessages", 200), ("CreateChatThread", 201), ("AddChatParticipants", 201),
)
DELIVERY_REPORT_URI: Final = "https://global.smsgw.prod.communication.microsoft.com/rtc/telephony/sms/DeliveryReport"
INBOUND_URI: Final = "https://global.smsgw.prod.communication.microsoft.com/rtc/telephony/sms/inbound"
MAX_DELIVERY_DELAY: Final = 900.0  # seconds; ACS gives up on a report long before Azure does
TICKS_PER_SECOND: Final = 10_000_000  # Azure writes 7 fractional digits (100 ns ticks)

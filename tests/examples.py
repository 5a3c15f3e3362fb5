"""One SMSOperational record as Event Hubs delivers it (the shape of ACS's documented example), shared
by the record and decoder tests. Tests copy it before changing it."""

from __future__ import annotations

from typing import Any

PHONE = "+15550100001"
MESSAGE_ID = "6e3f2f4c-0000-4c1a-9d7e-00000000a001"

EVENTHUBS_SMS: dict[str, Any] = {
    "time": "2026-11-02T09:15:01.1234567Z",
    "resourceId": "/SUBSCRIPTIONS/X/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/ACS",
    "operationName": "SMSMessagesSent",
    "operationVersion": "2021-03-07",
    "category": "SMSOperational",
    "resultType": "Succeeded",
    "resultSignature": 202,
    "resultDescription": "Accepted",
    "durationMs": 131,
    "callerIpAddress": "203.0.113.10",
    "correlationId": "9f1c6a2e-1111-4a2b-9c3d-000000000001",
    "level": "Informational",
    "location": "global",
    "properties": {
        "OutgoingMessageLength": 151,
        "IncomingMessageLength": 0,
        "DeliveryAttempts": 0,
        "PhoneNumber": PHONE,
        "NumberType": "LongCodeNumber",
        "SdkType": "azsdk-python-communication-sms",
        "PlatformType": "Linux",
        "Method": "POST",
        "Country": "US",
        "URI": "https://acs.communication.azure.com/sms?api-version=2021-03-07",
        "MessageId": MESSAGE_ID,
    },
}

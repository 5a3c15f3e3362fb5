"""Synthetic Azure Communication Services SMS traffic, as a diagnostic setting streams it to Event Hubs.

Why this exists: the consumer has to be exercised (benchmarks, end-to-end tests, `demo`, load tests
against a real hub) with traffic that looks like production — many records per body, sends followed
by their delivery reports minutes later, a long tail of slow reports, failures, incoming messages,
opt-outs, billing (`Usage`) records and records of categories the consumer skips — without an ACS
resource, real phone numbers or real money.

Two layers, as everywhere in this project:

- A **pure, deterministic core** (`TrafficOptions`, `TrafficGenerator`, `generate_corpus`, `Stats`):
  no I/O, no wall clock, one seeded `random.Random`. The same options give the same bytes. Time is
  *simulated*: every record has an offset in seconds from `TrafficOptions.start`, and records come out
  in time order, so a delivery report appears in the stream at its own (later) simulated time, exactly
  as Azure Monitor would deliver it. `Stats` is the ground truth: it counts what was emitted with the
  same label values the metrics use, so a test can assert exact metric values.
- A **thin shell** (`publish`, `main`): paces the stream to the wall clock, batches bodies into Event
  Hubs events with the real `azure.eventhub.aio.EventHubProducerClient`, prints progress, stops
  cleanly on cancellation / Ctrl-C. `main` is `acs-sms-consumer simulate`.

Record shape: the Azure resource-log common schema (see `sms-logs.md`): camelCase top level (`time`
with 7 fractional digits, upper-cased `resourceId`, `operationName`, `category`, `resultType`, ...)
and the PascalCase SMS fields inside `properties`. Values are plausible but fake: fictional phone
number ranges (NANP 555-01xx, Ofcom 07700 900xxx, ARCEP 06 39 98, ACMA 0491 570), documentation IP
ranges (RFC 5737), random version-4 GUIDs.

Assumptions (ACS does not document them; change here if real logs show otherwise):
- opt-out / opt-in records use the operation names `SMSOptOutReceived` / `SMSOptInReceived`, with the
  keyword's length as `IncomingMessageLength` (the consumer's `labels.SMS_OPERATIONS` knows them);
- a failed send (HTTP 4xx/5xx) carries no `MessageId` (no message was created);
- every accepted send and every incoming message is billed by one `Usage` record (`UsageType` `SMS`,
  `UnitType` `Message`, `Quantity` = number of segments) a few seconds later;
- the skipped category is `ChatOperational` with a few chat operation names.

Modules, one job each: `vocabulary` (operation names, status codes, mixes, fictional number ranges),
`options` (`TrafficOptions`, `Drill`, `parse_mix`), `generator` (`TrafficGenerator`, bodies, corpora),
`oracle` (`Stats`, the ground truth and the metric samples it predicts), `publisher` (`publish`, the
Event Hubs shell) and `cli` (`main`: `acs-sms-consumer simulate`). This package re-exports their
public names.
"""

from __future__ import annotations

from .vocabulary import CHAT_OPERATIONAL, DEFAULT_START, DELIVERY_STATUS, OPT_IN, OPT_OUT
from .options import Drill, TrafficOptions, parse_mix
from .oracle import Stats
from .generator import Body, TimedRecord, TrafficGenerator, build_corpus, generate_corpus
from .publisher import PublishReport, publish, split_records
from .cli import CONNECTION_STRING_ENV, build_parser, main, options_from_args, write_dry_run

__all__ = [
    "CONNECTION_STRING_ENV", "PublishReport", "build_parser", "main", "options_from_args", "publish",
    "write_dry_run", "OPT_IN", "OPT_OUT", "CHAT_OPERATIONAL", "DELIVERY_STATUS", "Body", "Drill", "Stats",
    "TimedRecord", "TrafficGenerator", "TrafficOptions", "build_corpus", "generate_corpus", "parse_mix",
    "split_records", "DEFAULT_START",
]

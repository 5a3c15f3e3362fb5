"""Bounded label values: every label value the metrics carry comes through here.

The contract (README.md, "Metric reference"): each label has a bounded set of values; anything unexpected maps to
`other`, a missing value to `unknown` where the contract says so. Known values keep the spelling
Azure writes (`SMSMessagesSent`, `Succeeded`, `LongCodeNumber`), so a metric can be matched to a log
line, but are recognised case-insensitively and with stray whitespace.

`FirstSeen` admits the first N distinct values of an open-ended label (usage types, result
signatures, categories) and maps the rest to `other`: cardinality is bounded however hostile the
input. Which of the *unknown* values are admitted depends on arrival order, so two replicas (or one
process before and after a restart) may disagree on them; the values ACS documents (its result
codes, usage and unit types: `DOCUMENTED_SIGNATURES`, `USAGE_TYPES`, `UNIT_TYPES`) are therefore
always their own value, on every replica, and take no first-N slot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

OTHER = "other"
UNKNOWN = "unknown"

#: SMSOperational operation names. The first three are documented by ACS; the opt-in/opt-out names
#: are what the traffic generator emits (ACS documents that such events are logged, not their names).
SMS_OPERATIONS: tuple[str, ...] = (
    "SMSMessagesSent",
    "SMSDeliveryReportsReceived",
    "SMSMessagesReceived",
    "SMSOptOutReceived",
    "SMSOptInReceived",
)
SENT = "SMSMessagesSent"
DELIVERY_REPORT = "SMSDeliveryReportsReceived"
RECEIVED = "SMSMessagesReceived"

#: ResultType values of the Azure resource-log common schema.
RESULTS: tuple[str, ...] = ("Succeeded", "Failed", "Started", "In Progress", "Canceled")
SUCCEEDED = "Succeeded"

NUMBER_TYPES: tuple[str, ...] = (
    "LongCodeNumber",
    "ShortCodeNumber",
    "DynamicAlphaSenderID",
    "TollFreeNumber",
    "AlphaSenderID",
)

#: HTTP statuses of the ACS SMS API (the status of the REST call is the ResultSignature of a send):
#: 202 for an accepted send, 200/201/204 for other successful calls, and the error statuses the ACS
#: REST APIs answer with (bad request, unauthorized, forbidden, not found, timeout, conflict, payload
#: too large, unsupported media type, too many requests, server errors).
HTTP_STATUSES: tuple[int, ...] = (200, 201, 202, 204, 400, 401, 403, 404, 408, 409, 413, 415, 429, 500, 502, 503, 504)
#: Delivery status codes ACS documents for delivery reports (Event Grid `DeliveryStatusDetails`, the
#: SMS error-code page): 2000 delivered; 4000-4020 rejected (fraud, bad From/To, unsupported,
#: non-existent, carrier block, unreachable, opted out, rate limit, entitlement, unverified
#: toll-free, volumetric...; the whole range, so a code Microsoft adds inside it is covered too);
#: 5000-5002 carrier issues; 9999 unknown.
DELIVERY_STATUSES: tuple[int, ...] = (2000, *range(4000, 4021), 5000, 5001, 5002, 9999)
#: Every `result_signature` value that is its own label value on every replica.
DOCUMENTED_SIGNATURES: tuple[str, ...] = tuple(str(code) for code in (*HTTP_STATUSES, *DELIVERY_STATUSES))

#: Usage and unit types ACS names in its Usage log docs (`Usage Type`: Chat, PSTN, NAT, ...; SMS
#: usage is `SMS`; `Unit Type`: minutes, megabytes, messages), spelled as the records spell them.
USAGE_TYPES: tuple[str, ...] = ("SMS", "PSTN", "Chat", "NAT")
UNIT_TYPES: tuple[str, ...] = ("Message", "Minute", "Megabyte")

SMS_OPERATIONAL = "SMSOperational"
USAGE = "Usage"
#: Log categories a Communication Services resource emits (`sms-logs.md`): the two parsed ones and
#: the others that share a hub and are counted as skipped.
CATEGORIES: tuple[str, ...] = (
    SMS_OPERATIONAL, USAGE, "ChatOperational", "AuthOperational", "CallSummary", "CallDiagnostics",
    "CallAutomationOperational", "CallRecordingSummary", "EmailSendMailOperational",
    "EmailStatusUpdateOperational", "EmailUserEngagementOperational", "NetworkTraversalOperational",
    "JobRouterOperational", "RoomsOperational", "AdvancedMessagingOperational",
)

#: ISO 3166-1 alpha-2 codes (officially assigned), the only values of the `country` label.
ISO_COUNTRIES: frozenset[str] = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
    BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
    EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
    HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
    LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
    NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()
)

#: A value longer than this is never admitted as a label value, even by `FirstSeen`.
MAX_LABEL_LENGTH = 64


class KnownValues:
    """Maps a raw value to its canonical spelling from a fixed set, case-insensitively."""

    __slots__ = ("_canonical", "_missing")

    def __init__(self, values: Iterable[str], missing: str = OTHER) -> None:
        self._canonical = {v.lower(): v for v in values}
        for v in list(self._canonical.values()):
            self._canonical[v] = v  # exact spelling hits without lower()
        self._missing = missing

    def __call__(self, raw: str | None) -> str:
        if raw is None:
            return self._missing
        found = self._canonical.get(raw)
        if found is not None:
            return found
        return self._canonical.get(raw.strip().lower(), OTHER)

    def __contains__(self, value: str) -> bool:
        return value in self._canonical


class FirstSeen:
    """Admits the first `limit` distinct values (compared case-insensitively, first spelling kept);
    later new values map to `other`. Values that are too long or not printable are never admitted.
    `known` values are always admitted, in their own spelling, and take none of the `limit` slots:
    they are the same label value on every replica whatever the arrival order."""

    __slots__ = ("_by_key", "_limit", "_missing", "_known")

    def __init__(self, limit: int, missing: str = UNKNOWN, known: Iterable[str] = ()) -> None:
        # lower-cased value → spelling; the known values, then at most `limit` first-seen ones
        self._by_key: dict[str, str] = {v.lower(): v for v in known}
        self._known = frozenset(self._by_key.values())
        self._limit = limit + len(self._by_key)
        self._missing = missing

    def __call__(self, raw: str | None) -> str:
        if raw is None:
            return self._missing
        value = raw.strip()
        if not value:
            return self._missing
        key = value.lower()
        found = self._by_key.get(key)
        if found is not None:
            return found
        if (len(self._by_key) >= self._limit or len(value) > MAX_LABEL_LENGTH or not value.isprintable()
                or not self._admissible(value)):
            return OTHER
        self._by_key[key] = value
        return value

    def _admissible(self, value: str) -> bool:
        return True

    def admitted(self) -> set[str]:
        """The values admitted on first sight (the known values not included)."""
        return set(self._by_key.values()) - self._known


#: What a name Azure gives (a category, a usage or unit type) looks like: a letter, then letters,
#: digits, space, `_`, `.`, `-`; few digits; no GUID. Phone numbers, message and correlation ids,
#: IP addresses and URIs fail it.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9 _.\-]*")
_GUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE)
MAX_NAME_DIGITS = 4


def looks_like_name(value: str) -> bool:
    """Whether `value` may be a label value of a name label (see `Names`)."""
    return (_NAME.fullmatch(value) is not None and sum(c.isdigit() for c in value) <= MAX_NAME_DIGITS
            and _GUID.search(value) is None)


class Names(FirstSeen):
    """`FirstSeen` for labels whose values are names (`category`, `usage_type`, `unit_type`): a value
    that does not look like a name is never admitted (it maps to `other`), so a phone number, an id,
    an address or a URI written into one of these fields cannot become a label value. (`known`:
    `USAGE_TYPES`, `UNIT_TYPES`.)"""

    __slots__ = ()

    def _admissible(self, value: str) -> bool:
        return looks_like_name(value)


#: The path segment that precedes an ACS resource's name in its ARM id (`resourceId`).
_ACS_TYPE = "communicationservices/"


def resource_name(resource_id: str) -> str | None:
    """The ACS resource name in an ARM resource id, lower-cased: the path segment after
    `COMMUNICATIONSERVICES/` (`/SUBSCRIPTIONS/…/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/ACS-PROD`
    → `acs-prod`; Azure upper-cases the id and sometimes drops its leading `/`); None when the id names
    no Communication Services resource."""
    lowered = resource_id.lower()
    at = lowered.find(_ACS_TYPE)
    if at <= 0 or lowered[at - 1] != "/":
        return None
    name = lowered[at + len(_ACS_TYPE):].split("/", 1)[0].strip()
    return name or None


class Resources(Names):
    """`resource`: the ACS resource name of a record's `resourceId` (`resource_name`). The names the
    operator lists (`pipeline.labels.resources`, lower-cased) always, on every replica; besides them
    the first `limit` distinct names that look like names (`looks_like_name`); anything else `other`
    (an id of another resource type too); no resourceId: `unknown`."""

    __slots__ = ()

    def __init__(self, limit: int, allowed: Iterable[str] = ()) -> None:
        super().__init__(limit, missing=UNKNOWN, known=[name.lower() for name in allowed])

    def __call__(self, raw: str | None) -> str:
        if raw is None:
            return UNKNOWN
        value = raw.strip()
        if not value:
            return UNKNOWN
        name = resource_name(value)
        return OTHER if name is None else super().__call__(name)


_SENDER_PUNCTUATION = str.maketrans("", "", "-().")


def sender_digits(value: str) -> str:
    """A sender number as listed, without white space (any) and `-().` (`+1 (844) 579-1704` is
    `+18445791704`): the one rule of what a sender is, for the configuration and the label."""
    return "".join(value.split()).translate(_SENDER_PUNCTUATION)


def sender_key(value: str) -> str:
    """How sender numbers are compared: `sender_digits`, upper-cased (an alphanumeric sender ID
    matches in any case)."""
    return sender_digits(value).upper()


class Senders:
    """`sender`: the organisation's own sender numbers (or sender IDs) the operator lists
    (`pipeline.labels.senders`), each its own value as listed (punctuation removed); every other value
    `other`, a missing one `unknown`. The only way a phone number becomes a label value: nothing is
    ever admitted on first sight."""

    __slots__ = ("_by_key",)

    def __init__(self, listed: Iterable[str]) -> None:
        self._by_key = {sender_key(value): sender_digits(value) for value in listed}

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def __call__(self, raw: str | None) -> str:
        if raw is None:
            return UNKNOWN
        if not raw.strip():
            return UNKNOWN
        return self._by_key.get(sender_key(raw), OTHER)


class ResultSignatures(FirstSeen):
    """`result_signature`: numeric status codes only. The codes ACS documents (`DOCUMENTED_SIGNATURES`:
    HTTP statuses of the SMS API, delivery status codes) always; other numeric codes, the first N
    distinct; anything non-numeric is `other`."""

    __slots__ = ()

    def __init__(self, limit: int, missing: str = UNKNOWN, known: Iterable[str] = DOCUMENTED_SIGNATURES) -> None:
        super().__init__(limit, missing, known)

    def __call__(self, raw: str | None) -> str:
        if raw is None:
            return self._missing
        value = raw.strip()
        if value.endswith(".0"):
            value = value[:-2]
        if not (value.isdigit() and value.isascii() and len(value) <= 6):
            return OTHER
        value = str(int(value))  # "0202" and "202" are one code
        return super().__call__(value)


def country(raw: str | None) -> str:
    """`country`: ISO 3166-1 alpha-2, upper case; missing → `unknown`, anything else → `other`.
    Matched on ASCII only: Unicode upper-casing would make "ß" the code SS and "ﬁ" FI."""
    if raw is None:
        return UNKNOWN
    if raw in ISO_COUNTRIES:
        return raw
    if not raw.isascii():
        return UNKNOWN if not raw.strip() else OTHER
    value = raw.strip().upper()
    if not value:
        return UNKNOWN
    return value if value in ISO_COUNTRIES else OTHER


#: Raw values longer than this, or not ASCII, are never memo keys (`BoundedMemo.remember`): a str holds
#: up to 4 bytes a character, so only ASCII keys this short bound a memo's memory whatever the input.
MAX_MEMO_KEY_LENGTH = 256


def memoisable(key: object) -> bool:
    """Whether `key` (a value, or a tuple of values) may be a memo key: each string ASCII (O(1):
    CPython keeps the flag) and at most `MAX_MEMO_KEY_LENGTH` long."""
    for value in key if type(key) is tuple else (key,):
        if type(value) is str and (len(value) > MAX_MEMO_KEY_LENGTH or not value.isascii()):
            return False
    return True


class BoundedMemo(dict[K, V]):
    """A memo of a pure `function`: `memo[key]` is `function(key)`, worked out on the first lookup (a
    hit is one dict lookup). At most `size` entries: when full it is emptied, so that hostile input
    cannot grow it (the function gives the same value again)."""

    __slots__ = ("size", "function")

    def __init__(self, function: Callable[[K], V], size: int = 4096) -> None:
        super().__init__()
        self.function = function
        self.size = size

    def __missing__(self, key: K) -> V:
        return self.remember(key, self.function(key))

    def remember(self, key: K, value: V) -> V:
        """Keep `value` under `key` (unless `key` is not `memoisable`) and return it."""
        if memoisable(key):
            if len(self) >= self.size:
                self.clear()
            self[key] = value
        return value

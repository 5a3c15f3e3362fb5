"""What an operator reads when the HTTP proxy fails (consumer/errors.py): the kind is `unreachable`,
not the SDK's wrapping (`AuthenticationError` with a custom endpoint), and the reason starts with
`HTTP proxy`; a proxy URL's user and password never reach a log line."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiohttp import ClientHttpProxyError, ClientProxyConnectionError, RequestInfo
from azure.eventhub.exceptions import AuthenticationError, EventHubError
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from consumer.errors import UNREACHABLE, classify, reason, scrub


def refused(status: int) -> BaseException:
    """What the SDK raises when the proxy answers CONNECT with `status` (its chain as seen with tinyproxy)."""
    url = URL("wss://127.0.0.1:4711/$servicebus/websocket")
    cause = ClientHttpProxyError(RequestInfo(url, "CONNECT", CIMultiDictProxy(CIMultiDict()), url), (),
                                 status=status, message="Access violation")
    try:
        raise EventHubError(f"{status}, message='Access violation', url='http://10.0.0.8:3128'") from cause
    except EventHubError as error:
        return error


def unreachable_proxy() -> BaseException:
    key = SimpleNamespace(host="10.0.0.8", port=3128, ssl=None)
    cause = ClientProxyConnectionError(key, ConnectionRefusedError(111, "Connect call failed"))  # type: ignore[arg-type]
    try:
        raise AuthenticationError("Failed to authenticate the connection due to exception: Cannot connect") from cause
    except AuthenticationError as error:
        return error


@pytest.mark.parametrize("status", [403, 407])
def test_a_refused_tunnel_is_unreachable_and_names_the_proxy(status: int) -> None:
    error = refused(status)
    assert classify(error) == UNREACHABLE
    assert reason(error).startswith(f"HTTP proxy refused the tunnel (CONNECT answered {status}); {status}, ")
    assert "10.0.0.8" not in reason(error)


def test_an_unreachable_proxy_is_not_an_authentication_failure() -> None:
    error = unreachable_proxy()
    assert classify(error) == UNREACHABLE
    assert reason(error).startswith("HTTP proxy unreachable; Failed to authenticate")


def test_without_a_proxy_the_reason_is_unchanged() -> None:
    error = EventHubError("something else")
    assert reason(error) == "something else"


def test_a_proxy_url_loses_its_user_and_password() -> None:
    assert scrub("url='http://svc%40corp:Pr0xy%20p@proxy.corp:3128/'") == "url='http://***@proxy.corp:3128/'"

"""Redirects of the Autoenhance API, followed by hand so that the API key cannot leak.

httpx forwards custom headers such as `x-api-key` to whatever host a redirect names, so the
shared clients are built with `follow_redirects=False` (`app.upstream.factory`) and every
request goes through `send`: a redirect to another origin drops the key (an asset host has no
business with it), a redirect to anything but http/https is refused, and so is a chain longer
than the client's `max_redirects`.
"""

from __future__ import annotations

from typing import Any

import httpx

from app.upstream.errors import UpstreamProtocolError

API_KEY_HEADER = "x-api-key"


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    params: dict[str, str] | None = None,
    json: Any = None,
    content: bytes | None = None,
    stream: bool = False,
) -> httpx.Response:
    """Send a request, following redirects safely; the caller closes a `stream=True` answer.

    A 303, or a 301/302 answering a POST, turns the next request into a GET without a body
    (as browsers and httpx do); the query string is the target's own.

    Raises:
        UpstreamProtocolError: a redirect to an invalid or non-http(s) URL, or too many.
        httpx.HTTPError: the transport failed (mapped by `app.upstream.mapping.mapped`).
    """
    origin = httpx.URL(url)
    for _ in range(http.max_redirects + 1):
        request = http.build_request(
            method, url, params=params, headers=headers, json=json, content=content
        )
        response = await http.send(request, stream=stream)
        if not response.has_redirect_location:
            return response
        location = response.headers["location"]
        # Reading the (small) redirect body lets the connection go back to the pool;
        # closing it unread would make httpcore drop the connection.
        await response.aread()
        await response.aclose()
        try:
            target = request.url.join(location)
        except httpx.InvalidURL as exc:
            raise UpstreamProtocolError("upstream redirected to an invalid URL") from exc
        if target.scheme not in ("http", "https"):
            raise UpstreamProtocolError("upstream redirected to a non-http URL")
        if (target.scheme, target.host, target.port) != (origin.scheme, origin.host, origin.port):
            headers = {k: v for k, v in headers.items() if k.lower() != API_KEY_HEADER}
        if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
            method, json, content = "GET", None, None
        url, params = str(target), None
    raise UpstreamProtocolError("upstream redirected too many times")

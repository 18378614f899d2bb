"""The client address behind reverse proxies: ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only when
the connection comes from a configured proxy (``CERTSTORE_TRUSTED_PROXIES``, ``certstore serve
--trusted-proxy``: addresses or networks, e.g. ``10.0.0.5,10.1.0.0/24``). By default no one is trusted — not
even a loopback peer — and the client is the connection's peer.

From a trusted peer, the ``X-Forwarded-For`` list is read from the right: each address that is itself a trusted
proxy is a hop of the chain, and the first one that is not is the client (a client cannot choose its address by
prepending to the header: only what the trusted proxies appended counts); a hop that is not an address ends the
chain at the proxy that appended it. The client address is what the
per-client rate limits (:mod:`api.ratelimit`, the login throttle) and the audit log see. ``certstore serve`` turns
uvicorn's own proxy-header handling off (it trusts loopback peers by default); this middleware is the one place.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["TrustedProxiesMiddleware", "parse_trusted_proxies"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(values: Iterable[str]) -> tuple[str, ...]:
    """The normalised networks of ``values`` (addresses or CIDR networks, comma- or space-separated); ValueError
    naming the first that is neither."""
    networks: list[str] = []
    for value in values:
        for item in value.replace(",", " ").split():
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(f"trusted proxy {item!r}: not an IP address or network") from None
    return tuple(networks)


class TrustedProxiesMiddleware:
    """ASGI middleware: from a peer in ``trusted`` (networks as :func:`parse_trusted_proxies` gives them), the
    client address of ``X-Forwarded-For`` and the scheme of ``X-Forwarded-Proto`` replace the connection's."""

    def __init__(self, app: ASGIApp, trusted: Sequence[str] = ()) -> None:
        self.app = app
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in trusted)

    def trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if self.networks and scope["type"] in ("http", "websocket") and client and self.trusts(client[0]):
            forwarded_for: list[str] = []
            proto: str | None = None
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    forwarded_for += [
                        hop.strip() for hop in value.decode("latin-1").split(",") if hop.strip()
                    ]
                elif name == b"x-forwarded-proto":
                    proto = value.decode("latin-1").split(",")[-1].strip().lower()
            if forwarded_for:
                scope = {**scope, "client": (self._client(client[0], forwarded_for), 0)}
            if proto in ("http", "https", "ws", "wss"):
                if scope["type"] == "websocket":
                    proto = proto.replace("http", "ws")
                scope = {**scope, "scheme": proto}
        await self.app(scope, receive, send)

    def _client(self, peer: str, hops: list[str]) -> str:
        """The right-most hop that is not a trusted proxy; where a hop is not an address at all, the trusted
        proxy that appended it; when every hop is trusted, the left-most."""
        nearest = peer
        for hop in reversed(hops):
            try:
                address = ipaddress.ip_address(hop)
            except ValueError:
                return nearest
            if not any(address in network for network in self.networks):
                return str(address)
            nearest = str(address)
        return nearest

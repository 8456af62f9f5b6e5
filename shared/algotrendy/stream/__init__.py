"""The live stream: topics market, positions, orders, alerts (and fills) over WebSocket and
SSE, fed by Redis pub/sub so any number of engine/API processes can publish."""

from algotrendy.stream.hub import StreamHub, Subscription

__all__ = ["StreamHub", "Subscription"]

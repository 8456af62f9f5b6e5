from __future__ import annotations

import pytest

from algotrendy.domain.orders import OrderIntent
from algotrendy.messaging import Envelope, EnvelopeError, InMemoryQueue, send_intent

INTENT = OrderIntent(intent_id="sig-000001", symbol="BTC/USDT", side="buy", quantity=1)


def test_intent_round_trip_through_queue() -> None:
    q = InMemoryQueue("orders.fifo")
    send_intent(q, INTENT)
    send_intent(q, INTENT)  # redelivered producer-side: de-duplicated by intent id
    [m] = q.receive()
    assert m.group_id == "default:BTC/USDT"
    env = Envelope.parse(m.body)
    assert env.type == "order.intent"
    assert env.id == INTENT.intent_id
    assert env.intent() == INTENT
    assert len(q) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "message body is not JSON"),
        ('{"type": "x", "id": "1"}', "not a message envelope: payload: Field required"),
        ('{"type": "order.intent", "id": "1", "payload": {"symbol": "X"}}', "invalid order intent"),
        ('{"type": "candles.closed", "id": "1", "payload": {}}', "expected a order.intent"),
    ],
)
def test_bad_bodies_are_named(body: str, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        Envelope.parse(body).intent()

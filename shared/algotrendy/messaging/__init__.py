"""Messaging: the queue port, its SQS and in-process adapters, and message envelopes."""

from algotrendy.messaging.base import Queue, QueueError, QueueMessage
from algotrendy.messaging.envelope import Envelope, EnvelopeError, send_intent
from algotrendy.messaging.memory import InMemoryQueue

__all__ = [
    "Envelope",
    "EnvelopeError",
    "InMemoryQueue",
    "Queue",
    "QueueError",
    "QueueMessage",
    "send_intent",
]

"""SQS adapter of the queue port (standard and FIFO queues) over a boto3 client.

The client is injected (built once per Lambda container / engine process); nothing here
reads the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from algotrendy.messaging.base import QueueError, QueueMessage

MAX_WAIT_SECONDS = 20  # SQS long-poll limit (ReceiveMessage WaitTimeSeconds)
MAX_BATCH = 10  # SQS ReceiveMessage MaxNumberOfMessages limit


class SqsQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self.url = queue_url
        self.name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        self.fifo = self.name.endswith(".fifo")

    def send(
        self,
        body: str,
        *,
        group_id: str | None = None,
        dedup_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        kwargs: dict[str, Any] = {"QueueUrl": self.url, "MessageBody": body}
        if self.fifo:
            if not group_id:
                raise QueueError(f"{self.name}: FIFO queue needs a message group id")
            kwargs["MessageGroupId"] = group_id
            if dedup_id:
                kwargs["MessageDeduplicationId"] = dedup_id
        if attributes:
            kwargs["MessageAttributes"] = {
                k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
            }
        reply = self._client.send_message(**kwargs)
        return str(reply["MessageId"])

    def receive(
        self,
        *,
        max_messages: int = 10,
        wait_seconds: float = 0.0,
        visibility_timeout: float | None = None,
    ) -> list[QueueMessage]:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.url,
            "MaxNumberOfMessages": max(1, min(max_messages, MAX_BATCH)),
            "WaitTimeSeconds": int(max(0, min(wait_seconds, MAX_WAIT_SECONDS))),
            "MessageSystemAttributeNames": ["ApproximateReceiveCount", "MessageGroupId"],
            "MessageAttributeNames": ["All"],
        }
        if visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = int(visibility_timeout)
        reply = self._client.receive_message(**kwargs)
        out = []
        for m in reply.get("Messages", []):
            attrs = m.get("Attributes", {})
            user = {k: v.get("StringValue", "") for k, v in m.get("MessageAttributes", {}).items()}
            out.append(
                QueueMessage(
                    body=m["Body"],
                    receipt=m["ReceiptHandle"],
                    message_id=m["MessageId"],
                    receive_count=int(attrs.get("ApproximateReceiveCount", 1)),
                    group_id=attrs.get("MessageGroupId"),
                    attributes=user,
                )
            )
        return out

    def delete(self, message: QueueMessage) -> None:
        self._client.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt)

    def release(self, message: QueueMessage, *, delay_seconds: float = 0.0) -> None:
        self._client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=message.receipt, VisibilityTimeout=int(delay_seconds)
        )

"""REST API on Lambda: the FastAPI app of `algotrendy.api` behind API Gateway (REST API,
proxy integration `ANY /{proxy+}`), adapted by Mangum.

Thin on purpose: the app, its routes and its composition root live in the library and
serve the local shape unchanged. The correlation id of each log line is API Gateway's
request id (Powertools `correlation_paths.API_GATEWAY_REST`); the app's middleware
prefers a client's `X-Request-Id` and echoes the id it used.

The app is built at import (a cold start), its database engine on the first request, and
each AWS client (SQS, Step Functions, SSM) by the first route that calls that service.
"""

from __future__ import annotations

import gc

# Cold start: the imports below allocate objects that live as long as the container, and
# the collector scanning them as they load is ~10% of the import (30 ms of the webhook's,
# 120 ms of the API's, bench/bench_cold_imports.py). It is paused until this module is
# built, then everything built so far is frozen out of later collections (end of file).
gc.disable()

import threading
from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES

from algotrendy.api import create_app
from algotrendy.api.observability import logger

# Traced: the database (SQLAlchemy core) from the start, botocore (SQS, SSM, Step
# Functions) from the first AWS client on. Only what the function calls: Tracer's default
# patches, and so imports, every library the X-Ray SDK supports that is importable
# (SQLAlchemy, httpx, requests...); patching botocore would import it at every cold start,
# though most routes never call AWS.
tracer = Tracer(patch_modules=["sqlalchemy_core"])
_patch_lock = threading.Lock()
_botocore_patched = False


def traced_client(service: str) -> Any:
    """`boto3.client(service)`, botocore patched for X-Ray before the first one is built
    (patching the client class covers every client built after it)."""
    global _botocore_patched
    with _patch_lock:
        if not _botocore_patched:
            tracer.patch(["botocore"])
            _botocore_patched = True
    import boto3

    return boto3.client(service)


app = create_app(aws_client=traced_client)
# Problem documents are text: without this Mangum would base64-encode every error body.
asgi = Mangum(
    app, lifespan="off", text_mime_types=[*DEFAULT_TEXT_MIME_TYPES, "application/problem+json"]
)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Powertools' and Mangum's LambdaContext protocols describe one object differently.
    lambda_context: Any = context
    return asgi(event, lambda_context)


# End of the cold start (see the top): keep what the imports built out of collections.
gc.freeze()
gc.enable()

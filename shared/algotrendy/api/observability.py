"""The API's Powertools logger: JSON lines carrying the request's correlation id.

One logger for the library side of the API and for `functions/api/app.py`, so the
Lambda context keys injected there and the request ids set by the middleware end up on
the same lines.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "algotrendy-api")

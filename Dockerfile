# The execution-engine container (VPS tier): consumes orders.fifo, trades, streams events.
# Built by CI elsewhere; there is no Docker engine on the development machines.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    NUMBA_CACHE_DIR=/tmp/numba \
    ALGOTRENDY_DATA_DIR=/var/lib/algotrendy

RUN groupadd --system --gid 10001 algotrendy \
 && useradd --system --uid 10001 --gid algotrendy --home /var/lib/algotrendy --create-home algotrendy

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
RUN pip install --no-cache-dir '.[data,server,aws]'

USER algotrendy
EXPOSE 8080

# /health answers 200 while the consumer thread runs, 503 when it has stopped.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)" || exit 1

# uvicorn turns SIGTERM into a graceful shutdown: the message in hand is finished first.
STOPSIGNAL SIGTERM
ENTRYPOINT ["algotrendy", "engine", "--host", "0.0.0.0", "--port", "8080"]

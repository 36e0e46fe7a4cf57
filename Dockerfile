FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TROUPE_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY simulation ./simulation
COPY adapters ./adapters
COPY bots ./bots
COPY config ./config
RUN pip install --no-cache-dir . && useradd --create-home troupe && mkdir -p /data && chown troupe /data

USER troupe
VOLUME ["/data"]
ENTRYPOINT ["troupe"]
CMD ["run"]

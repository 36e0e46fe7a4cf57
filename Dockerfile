# Debian 13 (trixie), pinned: its PostgreSQL client is version 17, which `troupe backup` (pg_dump) needs
# for docker-compose.yml's postgres:17 (pg_dump must be of the server's major version or newer).
FROM python:3.11-slim-trixie

RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-17 \
    && rm -rf /var/lib/apt/lists/*

# The database (worlds, outbox, response cache) and exports live in /data: mount a volume there.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TROUPE_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY simulation ./simulation
COPY adapters ./adapters
COPY bots ./bots
COPY config ./config
# A fixed, unprivileged uid: files on a bind-mounted /data belong to 10001 on the host too.
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 --user-group troupe \
    && mkdir -p /data \
    && chown troupe:troupe /data

USER troupe
VOLUME ["/data"]

# Healthy = the database the bot uses (the SQLite file on the volume, or TROUPE_DATABASE_URL) can be
# reached read-only and holds Troupe's tables. It reads the same settings as the bot. Deliberately
# not `troupe doctor`: that calls the model and Discord/Slack (cost, rate limits, minutes of
# timeouts) every interval; this takes well under a second and touches nothing.
HEALTHCHECK --interval=60s --timeout=15s --start-period=60s --retries=3 \
    CMD ["python", "-m", "bots.health"]

ENTRYPOINT ["troupe"]
# The bot, on every platform that has a token; `discord` or `slack` run one, `console` (with -it) the
# console, `doctor`, `backup`, `export` and `migrate` the commands (docs/configuration.md).
CMD ["serve"]

FROM python:3.11-slim

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

# Healthy = the database the bot uses can be opened read-only and holds Troupe's tables (the volume
# is mounted, readable, and the bot has created its schema). It reads the same settings as the bot,
# so a database moved with TROUPE_BOT_DATABASE or troupe.yaml is the one checked. Deliberately not
# `troupe doctor`: that calls the model and Discord/Slack (cost, rate limits, minutes of timeouts)
# every interval; this takes well under a second and touches nothing.
HEALTHCHECK --interval=60s --timeout=15s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sqlite3; from config.settings import Settings; p = Settings().database_path.resolve(); sqlite3.connect(p.as_uri() + '?mode=ro', uri=True, timeout=5).execute('SELECT count(*) FROM worlds')"]

ENTRYPOINT ["troupe"]
# The console; `discord` or `slack` run the bot (see docker-compose.yml and docs/configuration.md).
CMD ["serve"]

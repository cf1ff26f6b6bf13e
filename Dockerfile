# kayenta-py service image.
#
#   docker build -t kayenta-py:dev .
#   docker run --rm -p 8090:8090 -e KAYENTA_API_TOKENS=write:<token>,read:<token> kayenta-py:dev
#
# Settings are KAYENTA_* environment variables (see README.md, "The service"), or a YAML file
# mounted into the container and named by KAYENTA_SETTINGS_FILE. Without KAYENTA_DATABASE_URL
# the service uses SQLite under KAYENTA_DATA_DIR (/var/lib/kayenta-py; mount a volume there to
# keep it): one replica only. Several replicas need PostgreSQL
# (KAYENTA_DATABASE_URL=postgresql+psycopg://user:password@host/db).
#
# The schema is migrated when the service starts (serve applies the Alembic migrations before
# it listens); there is no separate migration step. Binding 0.0.0.0 needs KAYENTA_API_TOKENS,
# or `--insecure` appended to `docker run ... kayenta-py:dev` (arguments are added to serve's).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KAYENTA_DATA_DIR=/var/lib/kayenta-py

# Only what the wheel needs (see .dockerignore): the package, its plugins and its metadata.
COPY pyproject.toml README.md /tmp/kayenta-py/
COPY kayenta_py /tmp/kayenta-py/kayenta_py
COPY judges /tmp/kayenta-py/judges
COPY metrics_sources /tmp/kayenta-py/metrics_sources
RUN pip install /tmp/kayenta-py \
    && rm -rf /tmp/kayenta-py \
    && groupadd --system --gid 10001 kayenta \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/kayenta-py \
       --shell /usr/sbin/nologin kayenta \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/kayenta-py

WORKDIR /var/lib/kayenta-py
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001

EXPOSE 8090

# /healthz answers while the process is alive (no token needed); slim has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8090/healthz', timeout=4)"]

ENTRYPOINT ["kayenta-py", "serve", "--host", "0.0.0.0", "--port", "8090"]
CMD []

# The image the Helm chart runs (helm/nova-hostdown-bridge, image.repository).
#   docker build -t nova-hostdown-bridge:0.1.0 .
# Runs as a non-root user on a read-only root filesystem: the only writable paths are the
# volumes below (the SQLite database, /tmp for gunicorn and the metrics of its workers).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[postgres]'

FROM python:3.11-slim
RUN groupadd --system --gid 10001 bridge \
 && useradd --system --uid 10001 --gid bridge --home-dir /var/lib/hostdown-bridge --shell /usr/sbin/nologin bridge \
 && install -d -o bridge -g bridge -m 0750 /var/lib/hostdown-bridge
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels nova-hostdown-bridge[postgres] && rm -rf /wheels
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp TMPDIR=/tmp
WORKDIR /var/lib/hostdown-bridge
VOLUME ["/var/lib/hostdown-bridge", "/tmp"]
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["hostdown-bridge"]
# the embedded default (dry-run, SQLite here, tokens from HOSTDOWN_BRIDGE_WEBHOOK_TOKEN and
# HOSTDOWN_BRIDGE_ADMIN_TOKEN); the chart passes serve --config /etc/hostdown-bridge/config/bridge.yaml
CMD ["serve", "--bind", "0.0.0.0:8080"]

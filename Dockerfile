# The usage-exporter tool image used by docker-compose.yml (seed, backfill and exporter services).
# promtool comes from the same Prometheus release the compose stack runs, so the blocks it writes
# are readable by that server.
FROM prom/prometheus:v2.55.1 AS prometheus

FROM python:3.11-slim
COPY --from=prometheus /bin/promtool /usr/local/bin/promtool
WORKDIR /app
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install --no-cache-dir . && usage-exporter --version && promtool --version
COPY etc ./etc
EXPOSE 9188
ENTRYPOINT ["usage-exporter"]
CMD ["--help"]

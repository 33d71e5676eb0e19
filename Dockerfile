# crm-ledger: one image, every role (serve --role ingest|project|query|all).
# librdkafka is built from source inside the build stage (a C compiler and
# make are all it needs), so the runtime image carries no Kafka library.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p crm-ledger \
 && cp target/release/crm-ledger /usr/local/bin/crm-ledger

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data crm \
 && mkdir -p /data && chown crm /data
COPY --from=build /usr/local/bin/crm-ledger /usr/local/bin/crm-ledger
USER crm
VOLUME /data
ENV CRM_LEDGER_DATA_DIR=/data \
    CRM_LEDGER_LISTEN=0.0.0.0:8080 \
    CRM_LEDGER_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["crm-ledger"]
CMD ["serve"]

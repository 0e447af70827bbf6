# PostgreSQL from the base image's apt, for machines that cannot pull the official `postgres`
# image. Same interface as that image, so compose.yaml works with either: POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB, PGDATA, PGPORT, *.sql in /docker-entrypoint-initdb.d run once.
# POSTGRES_LISTEN (default *) picks the listening address.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/lib/postgresql/*/bin /usr/lib/postgresql/bin \
    && mkdir -p /var/lib/postgresql/data /docker-entrypoint-initdb.d /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY docker/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/bin:$PATH PGDATA=/var/lib/postgresql/data PGPORT=5432
USER postgres
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]

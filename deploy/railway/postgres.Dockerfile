# Railway's PostgreSQL image with the filegc extension added. Point the
# database service at this image: the data volume stays as it is, and
# `CREATE EXTENSION filegc` becomes available.
#
#   docker build -f deploy/railway/postgres.Dockerfile --build-arg PG_MAJOR=16 -t postgres-filegc:16 .
#
# PG_MAJOR must be the major version the service runs now (SHOW
# server_version): a data directory only opens with its own major version.
ARG PG_MAJOR=16

# Built on the official image of the same major version, which has the
# PostgreSQL apt repository for the headers. Bookworm's glibc is older than
# or equal to the runtime image's, so the library loads there.
FROM postgres:${PG_MAJOR}-bookworm AS build
ARG PG_MAJOR
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl build-essential pkg-config \
        libclang-dev clang "postgresql-server-dev-${PG_MAJOR}" \
 && rm -rf /var/lib/apt/lists/*
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain 1.95.0
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY . .
# The same script as `make install`: it installs cargo-pgrx, builds a
# release library and installs it into this stage's PostgreSQL.
RUN scripts/install-extension.sh "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" release \
 && mkdir -p /out/lib /out/extension \
 && cp "/usr/lib/postgresql/${PG_MAJOR}/lib/filegc.so" /out/lib/ \
 && cp /usr/share/postgresql/${PG_MAJOR}/extension/filegc* /out/extension/

FROM ghcr.io/railwayapp-templates/postgres-ssl:${PG_MAJOR}
ARG PG_MAJOR
COPY --from=build /out/lib/ /usr/lib/postgresql/${PG_MAJOR}/lib/
COPY --from=build /out/extension/ /usr/share/postgresql/${PG_MAJOR}/extension/

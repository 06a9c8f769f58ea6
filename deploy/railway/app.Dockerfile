# Adds the sweeper `filegc` to an existing application image and starts the
# application under `filegc run`, which sweeps and scans in the background,
# passes signals on to the application and exits with its status.
#
#   docker build -f deploy/railway/app.Dockerfile \
#       --build-arg APP_IMAGE=registry.example.com/my-app:latest -t my-app-filegc .
#
# In a Dockerfile of your own, copy the first stage and the COPY line, and
# put `filegc run --` in front of the command that starts the application.
ARG APP_IMAGE=node:20-bookworm-slim

# The binary links glibc; an application image on Alpine (musl) needs
# `rustup target add x86_64-unknown-linux-musl` and a build for that target.
FROM rust:1.95-bookworm AS filegc
WORKDIR /src
COPY . .
RUN scripts/build-sweeper.sh /out/filegc

FROM ${APP_IMAGE}
COPY --from=filegc /out/filegc /usr/local/bin/filegc
# Railway sets RAILWAY_VOLUME_MOUNT_PATH for a service with a volume, and
# filegc manages that directory; set FILEGC_VOLUME when the images live in a
# folder below it. DATABASE_URL comes from the database service's variables.
CMD ["filegc", "run", "--", "node", "server.js"]

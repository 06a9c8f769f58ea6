# Adds the sweeper `filegc` to an existing application image, whatever its
# language, and starts the application under `filegc run`, which sweeps and
# scans in the background, passes signals on to the application and exits
# with its status.
#
#   docker build -f deploy/railway/app.Dockerfile \
#       --build-arg APP_IMAGE=registry.example.com/my-app:latest \
#       --build-arg FILEGC_IMAGE=registry.example.com/filegc-sweeper:0.2.0 -t my-app-filegc .
#
# FILEGC_IMAGE is the image deploy/railway/sweeper.Dockerfile builds. In a
# Dockerfile of your own, the COPY line and the ENTRYPOINT are all it takes.
ARG APP_IMAGE=debian:bookworm-slim
ARG FILEGC_IMAGE=filegc-sweeper:0.2.0
FROM ${FILEGC_IMAGE} AS filegc

FROM ${APP_IMAGE}
COPY --from=filegc /filegc /usr/local/bin/filegc
# Railway sets RAILWAY_VOLUME_MOUNT_PATH for a service with a volume, and
# filegc manages that directory; set FILEGC_VOLUME when the images live in a
# folder below it. DATABASE_URL comes from the database service's variables.
ENTRYPOINT ["filegc", "run", "--"]
# An ENTRYPOINT clears the CMD the application's image had: give its start
# command again here (node server.js, gunicorn app:app, ./server, ...).
CMD ["./start"]

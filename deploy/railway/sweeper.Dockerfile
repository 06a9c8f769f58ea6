# The sweeper `filegc` alone, as the release builds it (scripts/release.sh:
# x86_64 Linux, glibc 2.28 or newer), in an image whose only job is to hold
# it. An application's Dockerfile adds it with one line:
#
#   COPY --from=registry.example.com/filegc-sweeper:0.2.0 /filegc /usr/local/bin/filegc
#
#   docker build -f deploy/railway/sweeper.Dockerfile -t registry.example.com/filegc-sweeper:0.2.0 .
FROM rust:1.95-bookworm AS build
# The release script installs zig from the ziglang wheel; Debian's own
# Python refuses pip installs unless told that this image is disposable.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-pip binutils \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_BREAK_SYSTEM_PACKAGES=1
WORKDIR /src
COPY . .
RUN scripts/release.sh /dist \
    && mkdir /out \
    && tar -xzf /dist/filegc-*-x86_64-linux-gnu.tar.gz -C /out --strip-components=1

FROM scratch
COPY --from=build /out/filegc /filegc

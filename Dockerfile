# dockwarden: one image holding both programs, state-controller and status-api.
#
# This file is the usual multi-stage build, for hosts that can pull from a registry: it
# compiles static binaries inside a Rust image and copies them into an image made FROM
# scratch:
#       docker build -t dockwarden:local .
#
# Hosts without a registry (this repository's CI, air-gapped hosts) build the SAME final
# image from binaries built on the host, with Dockerfile.local (nothing is pulled):
#       bash scripts/build-static.sh
#       docker build -f Dockerfile.local -t dockwarden:local .
# (docker-compose.yml does that: `docker-compose up -d --build`.)
#
# Why two files: the legacy builder (Docker 20.10's default, and any host without buildx)
# builds EVERY stage up to --target, used or not, and only skips the stages after it
# (verified). In one file, either the no-registry target would come after the Rust stage
# and pull it, or the registry target would come after the host-binary stage and fail on a
# clean clone without host-built binaries. BuildKit skips unused stages, the legacy builder
# does not. The final stage below and Dockerfile.local are kept identical but for the COPY
# (scripts/lint-deploy.sh checks it).
# No "# syntax=" line on purpose: with BuildKit it would pull a frontend image.

# ---- builder: static (glibc + crt-static) binaries ----------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY common common
COPY state-controller state-controller
COPY status-api status-api
COPY testkit testkit
# --target is required: without it RUSTFLAGS reach proc-macros and the build fails.
RUN RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked \
      --target x86_64-unknown-linux-gnu -p state-controller -p status-api --bins

# ---- final stage: keep identical in Dockerfile and Dockerfile.local ----------------------
FROM scratch
LABEL org.opencontainers.image.title="dockwarden" \
      org.opencontainers.image.description="Keeps a Docker host to an allowlist: state-controller and status-api" \
      org.opencontainers.image.licenses="Apache-2.0"
# Non-root by default (Kubernetes adds the Docker socket's group with supplementalGroups;
# docker-compose.yml documents how it gets socket access).
USER 10001:10001
# The policy directory is mounted here (a directory, never a single file: see README).
ENV DOCKWARDEN_ALLOWLIST=/etc/dockwarden/allowlist.toml
EXPOSE 8080 9090
# No shell in the image: health checks go through the binaries themselves. This one fits the
# default command (state-controller); the status-api service overrides it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/state-controller", "healthcheck"]
ENTRYPOINT ["/state-controller"]
# ---- end of the identical part -----------------------------------------------------------
COPY --from=builder /src/target/x86_64-unknown-linux-gnu/release/state-controller /src/target/x86_64-unknown-linux-gnu/release/status-api /

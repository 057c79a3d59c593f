# dockwarden: one image holding both programs, state-controller and status-api.
#
# Two ways to build the SAME final image (same base stage, same paths, same metadata):
#
#   With a registry (the usual multi-stage build; pulls a Rust image, compiles inside it):
#       docker build -t dockwarden:local .
#
#   Without a registry (this repository's CI, air-gapped hosts): build the static binaries on
#   the host, then only COPY them into an image made FROM scratch; nothing is pulled:
#       bash scripts/build-static.sh
#       DOCKER_BUILDKIT=0 docker build --target runtime-local -t dockwarden:local .
#   (docker-compose.yml does this second build for you: `docker-compose up -d --build`.)
#
# Stage ORDER matters for the no-registry path: the legacy builder builds every stage up to
# and including --target and ignores the ones after it, but it does pull the base of any
# stage BEFORE the target even when nothing uses it. So the stages that need no pull
# (base, runtime-local) come first and the Rust builder comes after them.
# No "# syntax=" line on purpose: with BuildKit it would pull a frontend image.

# ---- base: everything the final image holds except the binaries --------------------------
FROM scratch AS base
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

# ---- runtime-local: the no-registry path, from binaries built on the host -----------------
FROM base AS runtime-local
COPY target/x86_64-unknown-linux-gnu/release/state-controller target/x86_64-unknown-linux-gnu/release/status-api /

# ---- builder: the registry path compiles static (glibc + crt-static) binaries -------------
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

# ---- runtime: the registry path's final image (the default target) ------------------------
FROM base AS runtime
COPY --from=builder /src/target/x86_64-unknown-linux-gnu/release/state-controller /src/target/x86_64-unknown-linux-gnu/release/status-api /

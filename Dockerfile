# syntax=docker/dockerfile:1
#
# signet: one static binary on an empty (FROM scratch) image, non-root, no shell.
#
# Builder stage. The issue asks for a multi-stage build, and with registry access the
# natural first stage is `FROM rust:<version> AS build` running cargo. On the machines this
# project is developed and tested on, no container base image can be pulled (Docker Hub and
# other image registries are unreachable), so the build stage is the host instead:
#
#   RUSTFLAGS='-C target-feature=+crt-static' \
#     cargo build --release --target x86_64-unknown-linux-gnu --target-dir target/static
#   buildah bud -t localhost/signet:0.1.0 .        # or: docker build -t ... .
#
# scripts/check-deploy.sh does exactly this. Where registries ARE reachable, a containerised
# builder is one extra stage; put it above the final stage and point SIGNET_BINARY at it:
#
#   FROM docker.io/library/rust:1-bookworm AS build
#   WORKDIR /src
#   COPY . .
#   RUN RUSTFLAGS='-C target-feature=+crt-static' \
#       cargo build --release --locked --target x86_64-unknown-linux-gnu --target-dir /out
#   ...and in the final stage:  COPY --from=build /out/x86_64-unknown-linux-gnu/release/signet /signet
#
# The binary is statically linked (glibc, crt-static) and talks TLS with rustls and the
# roots compiled into it, so the image needs no libc, no CA bundle and no shell.

# Path of the static binary inside the build context (see .dockerignore).
ARG SIGNET_BINARY=target/static/x86_64-unknown-linux-gnu/release/signet

FROM scratch
ARG SIGNET_BINARY
ARG VERSION=0.1.0
ARG REVISION=unknown

LABEL org.opencontainers.image.title="signet" \
      org.opencontainers.image.description="Kubernetes admission webhook that admits only images with valid Sigstore/cosign signatures and pins them to the verified digest" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="scratch"

COPY --chown=0:0 --chmod=0555 ${SIGNET_BINARY} /signet

# Fixed non-root UID/GID; the Helm chart runs with the same ids (runAsUser 65532) and a
# read-only root filesystem plus an emptyDir at /tmp.
USER 65532:65532
EXPOSE 8443 8080

ENTRYPOINT ["/signet"]
CMD ["serve"]

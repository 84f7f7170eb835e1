# syntax=docker/dockerfile:1
# envoy-oidc: the official Envoy image the module's ABI is pinned to, plus the stripped
# module. Built and pushed for linux/amd64 and linux/arm64 by .github/workflows/release.yml.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t envoy-oidc .
#
# The `module` target is the module alone (FROM scratch: the .so and LICENSE), to mount
# into a stock Envoy 1.40.0 (an init container or an image volume). Built from a .so that
# is already there (scripts/test.sh builds it the same way):
#
#   buildah bud --build-arg MODULE_SOURCE=prebuilt --target module .

ARG RUST_VERSION=1.95.0
ARG ENVOY_VERSION=1.40.0
# `build` compiles here; `prebuilt` takes target/module/libenvoy_oidc.so.
ARG MODULE_SOURCE=build

# Cross-compiles on the build machine's own architecture: emulating arm64 for a release
# build with LTO would take the best part of an hour.
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG TARGETARCH
ARG BUILDARCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN set -eux; \
    case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-gnu; cross_gcc=gcc-x86-64-linux-gnu ;; \
      arm64) triple=aarch64-unknown-linux-gnu; cross_gcc=gcc-aarch64-linux-gnu ;; \
      *) echo "unsupported architecture $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    echo "$triple" > /triple; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "$cross_gcc" "libc6-dev-${TARGETARCH}-cross"; \
      rm -rf /var/lib/apt/lists/*; \
      rustup target add "$triple"; \
    fi
WORKDIR /src
COPY . .
# The same build_module the test command runs: release, stripped, target/module/.
RUN source scripts/tools.sh && build_module "$(cat /triple)" && mkdir /out && cp target/module/libenvoy_oidc.so /out/

FROM scratch AS prebuilt
COPY target/module/libenvoy_oidc.so /out/libenvoy_oidc.so

FROM ${MODULE_SOURCE} AS source

FROM scratch AS module
COPY --from=source /out/libenvoy_oidc.so /usr/local/lib/envoy/dynamic_modules/libenvoy_oidc.so
COPY LICENSE /usr/share/licenses/envoy-oidc/LICENSE

FROM envoyproxy/envoy:v${ENVOY_VERSION} AS runtime
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="envoy-oidc" \
      org.opencontainers.image.description="Envoy 1.40.0 with the envoy-oidc OpenID Connect dynamic module" \
      org.opencontainers.image.source="https://github.com/envoy-oidc/envoy-oidc" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=module / /
ENV ENVOY_DYNAMIC_MODULES_SEARCH_PATH=/usr/local/lib/envoy/dynamic_modules
# The envoy user of the official image; the chart runs it with a read-only root.
USER 101:101
ENTRYPOINT ["/usr/local/bin/envoy"]
CMD ["-c", "/etc/envoy/envoy.yaml"]

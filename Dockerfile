# Multi-stage build: jQuery from npm, the server and the compat tool from source, a small Debian
# runtime.

FROM node:20-bookworm-slim AS site-deps
WORKDIR /deps
COPY web-deps/package.json web-deps/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace: Cargo needs every member's manifest, and the compat crate derives its
# table variants from sql/schema.sql at compile time.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY compat/Cargo.toml ./compat/Cargo.toml
COPY compat/src ./compat/src
COPY bench/Cargo.toml ./bench/Cargo.toml
COPY bench/src ./bench/src
COPY sql ./sql
RUN cargo build --release --locked -p chat-server -p chat-compat

FROM debian:bookworm-slim
RUN useradd --system --no-create-home chat
COPY --from=build /src/target/release/chat-server /usr/local/bin/chat-server
# The operator's pre-switch check: `chat-compat replay --har FILE --against URL`.
COPY --from=build /src/target/release/chat-compat /usr/local/bin/chat-compat
COPY compat/legacy-site /srv/site
COPY --from=site-deps /deps/node_modules/jquery/dist/jquery.min.js /srv/site/jquery.js
USER chat
ENV CHAT_LISTEN=0.0.0.0:8080 \
    CHAT_SITE=/srv/site \
    RUST_LOG=info
EXPOSE 8080
# bash's /dev/tcp: no curl needed in the image.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /.chat-server/health HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '^ok' <&3"]
CMD ["chat-server"]

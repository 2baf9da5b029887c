# syntax=docker/dockerfile:1
# The praxis binary in a small non-root image, for `praxis serve` and `praxis job`
# (see deploy/kubernetes/ and the README's "Scale out" section).
#   docker build -t praxis:0.1.0 .
# Not built in this repository's CI (no container runtime there); see the README.

# --- build: the release binary, from the locked dependency graph --------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p praxis-cli --features kubernetes \
 && install -D -m 0755 target/release/praxis /out/praxis

# --- runtime: what tools and commands need, and nothing that runs as root ------------
FROM debian:bookworm-slim AS runtime
# bash: the shell and test_run tools; git: workspaces under version control;
# ca-certificates: HTTPS to model APIs (rustls reads the system roots).
RUN apt-get update \
 && apt-get install -y --no-install-recommends bash ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 praxis \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/praxis --create-home --shell /usr/sbin/nologin praxis \
 && install -d -o 10001 -g 10001 /workspace
COPY --from=build /out/praxis /usr/local/bin/praxis
USER 10001:10001
ENV PRAXIS_HOME=/var/lib/praxis \
    PRAXIS_WORKSPACE=/workspace
WORKDIR /workspace
ENTRYPOINT ["/usr/local/bin/praxis"]
CMD ["serve"]

# One image for every process: locker-api, locker-workers, locker-hasher,
# locker-agent.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p locker-api -p locker-workers -p locker-hasher -p locker-agent

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 lockerx \
    && install -d -o lockerx /var/lib/locker-agent
COPY --from=build /src/target/release/locker-api /src/target/release/locker-workers /src/target/release/locker-hasher /src/target/release/locker-agent /usr/local/bin/
USER lockerx
EXPOSE 8000
CMD ["locker-api"]

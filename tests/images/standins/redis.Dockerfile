# Stand-in for redis:7.4-alpine: Debian 12's redis-server (7.0), same command, port and /data.
FROM oddasr-standin/bookworm-minbase:latest
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
VOLUME ["/data"]
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
# Last, so that a new recipe keeps the layers above cached.
ARG STANDIN_RECIPE=unset
LABEL org.oddasr.standin="$STANDIN_RECIPE"

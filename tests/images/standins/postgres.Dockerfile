# Stand-in for postgres:16-alpine: Debian 12's PostgreSQL 15 with an entrypoint that reads the
# same variables (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA) on an empty data folder.
FROM oddasr-standin/bookworm-minbase:latest
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
RUN mkdir -p /etc/postgresql-common \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/*
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
# Last, so that a new recipe keeps the layers above cached.
ARG STANDIN_RECIPE=unset
LABEL org.oddasr.standin="$STANDIN_RECIPE"

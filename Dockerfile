# alertd: the daemon image. Build: docker build -t alertd .
# Run: docker run -e ALERTD_DATABASE_URL=postgresql://... -p 8080:8080 alertd
# APNs and FCM start once their credentials are given (mount them and set ALERTD_APNS_KEY_FILE,
# ALERTD_APNS_KEY_ID, ALERTD_APNS_TEAM_ID and/or ALERTD_FCM_SERVICE_ACCOUNT_FILE); until then
# the daemon serves the API and logs push_service_off for each.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY alertd ./alertd
COPY geo ./geo
COPY feeds ./feeds
COPY sheets ./sheets
COPY config ./config
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin alertd
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
USER alertd
ENV ALERTD_HTTP_HOST=0.0.0.0 \
    ALERTD_HTTP_PORT=8080 \
    ALERTD_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import os, sys, urllib.request; port = os.environ.get('ALERTD_HTTP_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["alertd"]
CMD ["run", "--migrate"]

# credbroker: the API (`credbroker api`) and the standalone broker (`credbroker broker`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY credbroker credbroker
COPY provisioning provisioning
COPY broker broker
COPY device_sdk device_sdk
COPY simulators simulators
RUN pip install --no-cache-dir '.[postgres]' \
    && useradd --system --home-dir /var/lib/credbroker --create-home credbroker
USER credbroker
ENV CREDBROKER_DATA_DIR=/var/lib/credbroker
EXPOSE 8000 1883
CMD ["credbroker", "api", "--host", "0.0.0.0", "--http-port", "8000"]

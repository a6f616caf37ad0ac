FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml setup.py constraints.txt README.md ./
COPY monitor monitor
COPY collectors collectors
COPY alerts alerts
COPY trainer trainer
COPY serving serving
COPY skewwatch skewwatch
COPY data data
# gcc only while installing: it builds the two compiled modules (collectors/_scan.c, monitor/stats/_exact.c)
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir -c constraints.txt '.[train]' \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY monitor monitor
COPY collectors collectors
COPY alerts alerts
COPY trainer trainer
COPY serving serving
COPY skewwatch skewwatch
COPY data data
RUN pip install --no-cache-dir -c constraints.txt '.[train]'

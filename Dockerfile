# Lettrine: one image for every process of the production mode (web, worker, beat, migrate);
# the command chooses the role, see docker-compose.yml.
FROM python:3.11-slim

# PYTHONPATH: code, templates, static files, migrations and alembic.ini are read from the copies
# in /app, not from the installed wheel; the app finds alembic.ini next to its source tree.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    LETTRINE_INSTANCE=/app/instance

WORKDIR /app

RUN groupadd --system --gid 10001 lettrine \
    && useradd --system --uid 10001 --gid lettrine --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin lettrine

# Dependencies first, in their own layer, rebuilt only when pyproject.toml changes. Every runtime
# dependency ships manylinux wheels, so no compiler is needed.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY service/ service/
COPY emails/ emails/
COPY workers/ workers/
COPY alembic.ini ./

# The project itself (its `lettrine` command), without the [dev] extra. instance/ holds runtime
# state and media/ is a volume shared by web and worker: a new named volume takes the ownership
# of the directory it is mounted on, so the unprivileged user can write there.
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info \
    && mkdir -p /app/instance/media \
    && chown -R lettrine:lettrine /app/instance

USER lettrine

EXPOSE 8000

# Shell form so that WEB_CONCURRENCY is expanded at start; `exec` makes gunicorn PID 1, so it
# receives the SIGTERM of `docker stop` and shuts down gracefully.
CMD exec gunicorn --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY:-2} --access-logfile - 'service.wsgi:app'

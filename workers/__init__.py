"""Celery workers: thin, named, idempotent tasks that call services."""

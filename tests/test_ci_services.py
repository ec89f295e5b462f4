"""Under CI the suite must run against the real servers, not the embedded default."""
import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import require


@pytest.mark.django_db
def test_database_is_postgresql_where_configured():
    require(connection.vendor == "postgresql", "DATABASE_URL does not point at PostgreSQL; running on SQLite")
    with connection.cursor() as cursor:
        cursor.execute("select version()")
        assert "PostgreSQL" in cursor.fetchone()[0]


def test_broker_is_a_server_where_configured():
    require(settings.CELERY_BROKER_URL.startswith(("redis://", "amqp://")),
            "CELERY_BROKER_URL is the embedded filesystem broker")
    from webapp.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        assert conn.connected

from django.db import migrations

from core.schema import drop_like_indexes


class Migration(migrations.Migration):
    """Every audit record and event is an INSERT into these tables: no `_like` indexes on them."""

    dependencies = [("audit", "0008_audit_seals")]

    operations = [
        drop_like_indexes("audit_logs", ["action", "actor_id", "target_id"]),
        drop_like_indexes("outbox_events", ["type"]),
    ]

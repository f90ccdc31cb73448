# The consumer machinery's tables (de-duplication, dead letters) and the relay's outbox indexes.

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0002_append_only_trigger'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='outboxevent',
            index=models.Index(condition=models.Q(('published_at__isnull', True)), fields=['topic', 'key', 'created_at'], name='outbox_unsent_key_idx'),
        ),
        migrations.AddIndex(
            model_name='outboxevent',
            index=models.Index(condition=models.Q(('published_at__isnull', False)), fields=['published_at'], name='outbox_sent_idx'),
        ),
        migrations.CreateModel(
            name='DeadLetter',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('consumer', models.CharField(max_length=64)),
                ('topic', models.CharField(max_length=255)),
                ('partition', models.IntegerField()),
                ('offset', models.BigIntegerField()),
                ('key', models.CharField(blank=True, max_length=255)),
                ('reason', models.CharField(db_index=True, max_length=64)),
                ('detail', models.TextField(blank=True)),
                ('headers', models.JSONField(blank=True, default=dict)),
                ('value', models.TextField(blank=True)),
                ('value_kept', models.BooleanField(default=False)),
                ('value_size', models.PositiveIntegerField(default=0)),
                ('value_digest', models.CharField(blank=True, max_length=64)),
                ('received_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
            ],
            options={
                'db_table': 'dead_letters',
                'ordering': ['-received_at'],
                'constraints': [models.UniqueConstraint(fields=('consumer', 'topic', 'partition', 'offset'), name='dead_letters_unique_source')],
            },
        ),
        migrations.CreateModel(
            name='ProcessedMessage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('consumer', models.CharField(max_length=64)),
                ('message_id', models.CharField(max_length=255)),
                ('processed_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('outcome', models.JSONField(blank=True, default=dict)),
            ],
            options={
                'db_table': 'processed_messages',
                'ordering': ['-processed_at'],
                'constraints': [models.UniqueConstraint(fields=('consumer', 'message_id'), name='processed_messages_unique')],
            },
        ),
    ]

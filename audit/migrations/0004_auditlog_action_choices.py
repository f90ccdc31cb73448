# Choices only (the token, consent and key actions added to AuditAction); no schema change.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0003_consumer_tables'),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditlog',
            name='action',
            field=models.CharField(choices=[('user.created', 'User created'), ('user.updated', 'User updated'), ('user.blocked', 'User blocked'), ('user.unblocked', 'User unblocked'), ('user.roleChanged', 'User role changed'), ('user.deleted', 'User deleted'), ('user.passwordChanged', 'Password changed'), ('user.locked', 'Account locked after failed logins'), ('user.unlocked', 'Account unlocked'), ('login.succeeded', 'Login succeeded'), ('login.failed', 'Login failed'), ('logout', 'Logout'), ('token.issued', 'Token issued'), ('token.refreshed', 'Token refreshed'), ('token.revoked', 'Token revoked'), ('token.refreshReused', 'Rotated refresh token reused: family revoked'), ('token.codeReplayed', 'Authorization code replayed: its tokens revoked'), ('consent.granted', 'Consent granted'), ('consent.denied', 'Consent denied'), ('key.rotated', 'Signing key rotated'), ('client.created', 'B2B client created'), ('client.updated', 'B2B client updated')], db_index=True, max_length=64),
        ),
    ]

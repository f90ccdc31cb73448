"""The transactional outbox's way out: the relay that sends committed rows to Kafka (`relay`),
the back-off every relay shares (`backoff`), the trigger after each commit (`kick`), the lag the
admin, /readyz and /metrics report (`lag`), and the pruning of what was sent (`retention`)."""

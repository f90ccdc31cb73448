"""`manage.py audit_chain seal` appends the settled records to the audit log's hash chain;
`manage.py audit_chain verify` recomputes it and reports the first break (exit 1), audit.chain."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit import chain


class Command(BaseCommand):
    help = "Seal the audit log's settled records into its hash chain, or verify the chain."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("what", choices=["seal", "verify"])

    def handle(self, *args: Any, **options: Any) -> None:
        if options["what"] == "seal":
            total = 0
            while (sealed := chain.seal(everything=True)).count:
                total += sealed.count
            self.stdout.write(f"sealed {total} record(s); head {sealed.head_seq} {sealed.head_digest}")
            return
        verdict = chain.verify()
        if not verdict.ok:
            broken = f"audit chain broken after {verdict.checked} good link(s): {verdict.first_break}"
            raise CommandError(broken)
        self.stdout.write(
            f"audit chain intact: {verdict.checked} link(s); "
            f"{verdict.unsealed_settled} record(s) older than ten minutes not sealed yet"
        )

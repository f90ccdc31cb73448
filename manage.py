#!/usr/bin/env python3
"""Django's command-line utility, with configuration errors shown as one clear line."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
    from idp.startup import run_cli

    run_cli(sys.argv)


if __name__ == "__main__":
    main()

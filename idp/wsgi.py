import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
django.setup(set_prefix=False)

from core import heap  # noqa: E402
from idp.machine import Application  # noqa: E402  (needs the apps loaded)

application = Application()
heap.settle()

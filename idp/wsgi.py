import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
django.setup(set_prefix=False)

from idp.machine import Application  # noqa: E402  (needs the apps loaded)

application = Application()

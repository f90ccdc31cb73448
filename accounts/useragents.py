"""A browser's User-Agent said the way people read it: "Chrome 131 on Windows 10".

ua-parser (the uap-core rules, as most identity providers use them) does the parsing; an agent it
does not know is shown shortened as it came."""

from __future__ import annotations

from functools import lru_cache

from django.utils.translation import gettext as _


@lru_cache(maxsize=1024)
def _families(user_agent: str) -> tuple[str, str]:
    # ua-parser when a page first names a browser: every process loads the admin (and this) at
    # start, and the library would cost the gRPC server, the worker and the consumer 48 ms and
    # 3.7 MB each for nothing.
    from ua_parser import parse

    parsed = parse(user_agent[:512])
    browser = os_name = ""
    if parsed.user_agent is not None and parsed.user_agent.family != "Other":
        browser = " ".join(filter(None, (parsed.user_agent.family, parsed.user_agent.major)))
    if parsed.os is not None and parsed.os.family != "Other":
        os_name = " ".join(filter(None, (parsed.os.family, parsed.os.major)))
    return browser, os_name


def describe(user_agent: str) -> str:
    if not user_agent:
        return ""
    browser, os_name = _families(user_agent)
    if browser and os_name:
        return _("%(browser)s on %(os)s") % {"browser": browser, "os": os_name}
    return browser or os_name or user_agent[:80]

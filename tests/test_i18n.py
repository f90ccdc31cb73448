"""The Russian catalogue is complete and compiled, and what the admin shows a Russian reader is
Russian: app, model, field and choice names, and the admin's index page."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

import polib
import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.db.models import Field, Model
from django.test import Client
from django.utils import translation
from django.utils.text import capfirst
from django_otp.models import Device

from accounts.otp_apps import DEVICE_FIELD_NAMES
from audit.registry import AuditAction

CATALOGUE = Path(settings.BASE_DIR) / "locale" / "ru" / "LC_MESSAGES" / "django"
OUR_APPS = {"accounts", "clients", "audit", "oidc", "api", "console"}

# Names that are the same in Russian, each for its reason (keep this short).
SAME_IN_RUSSIAN = {
    "ID",  # an identifier's abbreviation, written so in Russian text too (DOT's keys say "id")
    "id",
    "e-mail",  # our Russian pages write it so too («Логин или e-mail»)
    "OpenID Connect",  # the protocol's name (the oidc app's section)
    "SAML 2.0",  # the protocol's name (a client's identity provider)
    "plain",  # PKCE code challenge methods (RFC 7636): protocol values, shown as they are
    "S256",
}

# %(name)s, %(count)d, %s ... (python-format) and {name} (str.format, e.g. DOT's messages).
PLACEHOLDER = re.compile(r"%(?:\(\w+\))?[#0 +-]*\d*(?:\.\d+)?[sdifr]|\{\w*\}")


@pytest.fixture(scope="module")
def po() -> polib.POFile:
    return polib.pofile(f"{CATALOGUE}.po")


def _nplurals(po: polib.POFile) -> int:
    found = re.search(r"nplurals\s*=\s*(\d+)", po.metadata.get("Plural-Forms", ""))
    assert found, "the catalogue names no Plural-Forms"
    return int(found.group(1))


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text.replace("%%", "")))


def test_every_message_is_translated_and_none_is_fuzzy(po):
    assert [e.msgid for e in po if not e.obsolete and not e.translated()] == []
    assert [e.msgid for e in po.fuzzy_entries()] == []


def test_every_plural_has_all_its_forms(po):
    forms = _nplurals(po)
    assert forms == 4  # Russian: one, few, many, and fractions
    for entry in po:
        if entry.msgid_plural and not entry.obsolete:
            assert sorted(entry.msgstr_plural) == list(range(forms)), entry.msgid
            assert all(text.strip() for text in entry.msgstr_plural.values()), entry.msgid


def test_translations_keep_the_placeholders(po):
    for entry in po:
        if entry.obsolete:
            continue
        if entry.msgid_plural:
            expected = _placeholders(entry.msgid) | _placeholders(entry.msgid_plural)
            for text in entry.msgstr_plural.values():
                assert _placeholders(text) == expected, (entry.msgid, text)
        else:
            assert _placeholders(entry.msgstr) == _placeholders(entry.msgid), (entry.msgid, entry.msgstr)


def _messages(catalogue: polib.POFile | polib.MOFile) -> dict[tuple[str | None, str], object]:
    found: dict[tuple[str | None, str], object] = {}
    for entry in catalogue:
        if not entry.msgid or entry.obsolete or "fuzzy" in entry.flags:
            continue
        value = dict(entry.msgstr_plural) if entry.msgid_plural else entry.msgstr
        found[(entry.msgctxt, entry.msgid)] = value
    return found


def test_the_compiled_catalogue_is_the_current_one(po):
    """The .mo Django reads says what the .po says: `compilemessages` was run after the last edit."""
    compiled = polib.mofile(f"{CATALOGUE}.mo")
    assert _messages(compiled) == _messages(po)


# --- what the admin shows --------------------------------------------------------------------


def _in_both(text: object) -> tuple[str, str]:
    with translation.override("en"):
        english = str(text)
    with translation.override("ru"):
        russian = str(text)
    return english, russian


def _untranslated(texts: dict[str, object]) -> list[str]:
    """The `where` of each text whose Russian is its English (and not on the short list)."""
    found = []
    for where, text in texts.items():
        english, russian = _in_both(text)
        if english == russian and english not in SAME_IN_RUSSIAN:
            found.append(f"{where}: {english!r}")
    return found


def _admin_models() -> list[type[Model]]:
    return sorted(admin.site._registry, key=lambda model: model._meta.label)


def test_every_section_and_model_the_admin_shows_has_a_russian_name():
    texts: dict[str, object] = {}
    for model in _admin_models():
        opts = model._meta
        texts[f"{opts.label} verbose_name"] = opts.verbose_name
        texts[f"{opts.label} verbose_name_plural"] = opts.verbose_name_plural
        texts[f"app {opts.app_label}"] = opts.app_config.verbose_name
    assert _untranslated(texts) == []


def _our_models() -> list[type[Model]]:
    return [model for model in apps.get_models() if model._meta.app_label in OUR_APPS]


def _fields(model: type[Model]) -> list[Field]:
    # Forward fields (the reverse ends of relations are named by the other model's fields).
    return [field for field in model._meta.get_fields() if isinstance(field, Field)]


def test_every_field_of_our_models_has_a_russian_name_and_help_text():
    texts: dict[str, object] = {}
    for model in _our_models():
        for field in _fields(model):
            texts[f"{model._meta.label}.{field.name}"] = field.verbose_name
            # Our SMS device inherits django-otp's help texts, which the library does not mark for
            # translation (the device pages show translated ones: accounts.admin.devices.DeviceForm).
            inherited = issubclass(model, Device) and field.name in DEVICE_FIELD_NAMES
            if field.help_text and not inherited:
                texts[f"{model._meta.label}.{field.name} help"] = field.help_text
    assert _untranslated(texts) == []


def test_every_choice_of_our_models_and_every_audit_action_has_a_russian_label():
    texts: dict[str, object] = {}
    for model in _our_models():
        for field in _fields(model):
            for value, label in field.flatchoices:
                texts[f"{model._meta.label}.{field.name}={value}"] = label
    for action in AuditAction:
        texts[f"AuditAction.{action.name}"] = action.label
    assert _untranslated(texts) == []


def test_the_admin_index_names_no_section_or_model_in_english(admin_user):
    browser = Client(HTTP_ACCEPT_LANGUAGE="ru")
    browser.force_login(admin_user)
    response = browser.get("/admin/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<html lang="ru"' in page

    names: set[tuple[str, str]] = set()
    for model in _admin_models():
        opts = model._meta
        names.add(_in_both(capfirst(opts.verbose_name_plural)))
        names.add(_in_both(opts.app_config.verbose_name))
    english = [en for en, ru in names if en != ru and re.search(rf">\s*{re.escape(escape(en))}\s*<", page)]
    assert english == []
    missing = [ru for _, ru in names if escape(ru) not in page]
    assert missing == []

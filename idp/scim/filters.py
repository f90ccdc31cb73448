"""SCIM filters (RFC 7644 §3.4.2.2) on users, as database queries.

scim2-models parses the filter into a tree; this walks the tree into a Django `Q` over the
attributes we keep. An attribute we do not keep is `invalidFilter` (400), never a silent
"matches all"."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from django.db.models import Q
from django.utils.dateparse import parse_datetime
from scim2_models import InvalidFilterException, ScimFilter
from scim2_models.path.expressions import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)

from accounts.models import User
from idp.scim.resources import GROUP_ROLES, USER_SCHEMA

MAX_FILTER_LENGTH = 2048
_OP = CompareOperator

# A string attribute: (column, case-exact?). RFC 7643 §4.1: userName and e-mail addresses compare
# without regard to case; externalId and ids exactly (§3.1).
_STRINGS: dict[str, tuple[str, bool]] = {
    "username": ("username", False),
    "externalid": ("external_id", True),
    "name.givenname": ("given_name", False),
    "name.familyname": ("family_name", False),
    "emails": ("email", False),
    "emails.value": ("email", False),
    "phonenumbers": ("phone", False),
    "phonenumbers.value": ("phone", False),
}
_DATES = {"meta.lastmodified": "updated_at", "meta.created": "created_at"}
_LOOKUPS = {
    (_OP.eq, False): "iexact",
    (_OP.eq, True): "exact",
    (_OP.co, False): "icontains",
    (_OP.co, True): "contains",
    (_OP.sw, False): "istartswith",
    (_OP.sw, True): "startswith",
    (_OP.ew, False): "iendswith",
    (_OP.ew, True): "endswith",
    (_OP.gt, False): "gt",
    (_OP.gt, True): "gt",
    (_OP.ge, False): "gte",
    (_OP.ge, True): "gte",
    (_OP.lt, False): "lt",
    (_OP.lt, True): "lt",
    (_OP.le, False): "lte",
    (_OP.le, True): "lte",
}


def parse(text: str) -> FilterNode:
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilterException(detail=f"the filter is longer than {MAX_FILTER_LENGTH} characters")
    try:
        return ScimFilter(text).ast
    except InvalidFilterException:
        raise
    except ValueError as exc:  # the grammar's own errors
        raise InvalidFilterException(detail=f"the filter cannot be read: {exc}") from None


def _name(path: AttrPath, prefix: str = "") -> str:
    if path.uri and path.uri.lower() != USER_SCHEMA.lower():
        raise InvalidFilterException(detail=f"unknown attribute {path}")
    name = path.attr.lower() if not prefix else f"{prefix}.{path.attr.lower()}"
    return f"{name}.{path.sub_attr.lower()}" if path.sub_attr else name


def _unknown(name: str) -> InvalidFilterException:
    return InvalidFilterException(detail=f"attribute {name} cannot be filtered on here")


def _string(column: str, exact: bool, op: CompareOperator, value: object) -> Q:
    if not isinstance(value, str):
        raise InvalidFilterException(detail=f"{column} compares with a string")
    if op == _OP.ne:
        return ~_string(column, exact, _OP.eq, value)
    return Q(**{f"{column}__{_LOOKUPS[op, exact]}": value})


def _present(column: str) -> Q:
    return ~Q(**{column: ""})


def _comparison(name: str, op: CompareOperator, value: object) -> Q:
    if name in _STRINGS:
        column, exact = _STRINGS[name]
        return _string(column, exact, op, value)
    if name == "id":
        if op not in (_OP.eq, _OP.ne):
            raise InvalidFilterException(detail="id compares with eq or ne")
        try:
            match = Q(pk=uuid.UUID(str(value)))
        except ValueError:
            match = Q(pk__in=[])
        return ~match if op == _OP.ne else match
    if name == "active":
        if not isinstance(value, bool) or op not in (_OP.eq, _OP.ne):
            raise InvalidFilterException(detail="active compares with eq or ne and true or false")
        active = Q(status=User.Status.ACTIVE)
        return active if value == (op == _OP.eq) else ~active
    if name in _DATES:
        moment = parse_datetime(value) if isinstance(value, str) else None
        if not isinstance(moment, datetime) or op in (_OP.co, _OP.sw, _OP.ew):
            raise InvalidFilterException(detail=f"{name} compares with a date-time (RFC 3339)")
        column = _DATES[name]
        if op == _OP.ne:
            return ~Q(**{column: moment})
        lookup = {_OP.eq: "exact", _OP.gt: "gt", _OP.ge: "gte", _OP.lt: "lt", _OP.le: "lte"}[op]
        return Q(**{f"{column}__{lookup}": moment})
    if name in ("groups", "groups.value"):
        if op not in (_OP.eq, _OP.ne) or not isinstance(value, str):
            raise InvalidFilterException(detail="groups compare with eq or ne")
        match = Q(role=value) if value in GROUP_ROLES else Q(pk__in=[])
        return ~match if op == _OP.ne else match
    if name in ("emails.type", "phonenumbers.type"):
        # The one address we keep is the work one.
        column = "email" if name.startswith("emails") else "phone"
        if op not in (_OP.eq, _OP.ne) or not isinstance(value, str):
            raise InvalidFilterException(detail=f"{name} compares with eq or ne")
        match = _present(column) if value.lower() == "work" else Q(pk__in=[])
        return ~match if op == _OP.ne else match
    if name in ("emails.primary", "phonenumbers.primary"):
        column = "email" if name.startswith("emails") else "phone"
        if op not in (_OP.eq, _OP.ne) or not isinstance(value, bool):
            raise InvalidFilterException(detail=f"{name} compares with eq or ne and true or false")
        match = _present(column) if value else Q(pk__in=[])
        return ~match if op == _OP.ne else match
    raise _unknown(name)


def _presence(name: str) -> Q:
    if name in _STRINGS:
        return _present(_STRINGS[name][0])
    if name in ("emails.type", "emails.primary"):
        return _present("email")
    if name in ("phonenumbers.type", "phonenumbers.primary"):
        return _present("phone")
    if name in ("id", "active", "meta.lastmodified", "meta.created", "groups", "groups.value"):
        return Q(role__in=GROUP_ROLES) if name.startswith("groups") else Q()
    raise _unknown(name)


def to_q(node: FilterNode, prefix: str = "") -> Q:
    """The query for `node`; `prefix` is the multi-valued attribute of a `attr[...]` selection."""
    if isinstance(node, Comparison):
        return _comparison(_name(node.attr_path, prefix), node.op, node.value)
    if isinstance(node, Present):
        return _presence(_name(node.attr_path, prefix))
    if isinstance(node, Not):
        return ~to_q(node.expr, prefix)
    if isinstance(node, LogicalExpr):
        combine: Callable[[Q, Q], Q] = (
            (lambda a, b: a & b) if node.op == LogicalOperator.and_ else (lambda a, b: a | b)
        )
        query = to_q(node.terms[0], prefix)
        for term in node.terms[1:]:
            query = combine(query, to_q(term, prefix))
        return query
    if isinstance(node, ValuePath):
        if prefix or node.attr_path.sub_attr:
            raise InvalidFilterException(detail="a value selection cannot be nested")
        return to_q(node.val_filter, _name(node.attr_path))
    raise InvalidFilterException(detail="this filter cannot be applied")

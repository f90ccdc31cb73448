"""Python modules generated from proto/*.proto by `make proto` (grpcio-tools); do not edit them.

A package of its own, not under `idp`: generated modules import each other by their path here,
and the proto package (`authsvc.events.v1`) is distinct from every Django package.
"""

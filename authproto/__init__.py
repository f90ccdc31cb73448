"""Python modules generated from proto/*.proto by `make proto` (grpcio-tools); do not edit them.

A package of its own, not under `idp`: generated modules import each other as `authproto.*`,
and no proto package may be named like a Django package (`idp` would shadow ours).
"""

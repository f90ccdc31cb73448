"""The security regression suite: each finding of the adversarial review of December as an attack
on a live server (pytest-django's live server over real HTTP, the gRPC server on a real port),
asserting the exact refusal. One module per class of attack."""

"""Shared infrastructure under the apps: no models, imports no app of ours."""

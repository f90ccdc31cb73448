from django.contrib.auth.hashers import BCryptSHA256PasswordHasher


class FastBCryptSHA256PasswordHasher(BCryptSHA256PasswordHasher):
    """The production algorithm with the minimum cost, so tests that create users stay quick."""

    rounds = 4

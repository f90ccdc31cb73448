"""End-to-end tests: the whole service as people and neighbouring systems meet it. Headless
Chromium through the pages (Debian's chromium, driven by Playwright), Debian's nginx as the
gateway in front of a live server, and schema-driven fuzzing of the whole REST API."""

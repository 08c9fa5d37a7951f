"""The explorer: HTML pages for people, served by the API itself (see router.py)."""

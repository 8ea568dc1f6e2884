"""The HTTP recommendation service over the registry's champion (``sid-platform serve``); plain Python, no Dagster.

``server`` builds and runs it, ``app`` holds the routes and the error rules, ``reload`` follows the champion
alias, ``model`` is one loaded champion (ranking, lookups, search, the per-user cache), ``lookup`` the item →
USID and prefix → items stores, ``components`` the bundle components the service adds. This package imports
nothing heavy itself, so the promotion asset can read the component names without loading the web stack.
"""

from sid_platform.service.components import ITEM_EMBEDDINGS, ITEM_TITLES, USER_HISTORIES

__all__ = ["ITEM_EMBEDDINGS", "ITEM_TITLES", "USER_HISTORIES"]

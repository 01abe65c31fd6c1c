"""The online core: routing, ranking, the serving state, caches, refresh."""

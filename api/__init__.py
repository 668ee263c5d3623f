"""The JSON API (django-ninja): api.main builds it, api.urls mounts it."""

# Where the API is mounted: a constant of its own, so that what must know the path (the run
# poll registered at start-up in every process) need not build the API to learn it.
PREFIX = "/api/v1/"

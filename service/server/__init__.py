"""The serving process around the app: uvicorn's request-head limit, draining on SIGTERM, and
the C allocator's settings."""

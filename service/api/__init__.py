"""HTTP transport: thin routers over the data plane in ``service.predict``."""

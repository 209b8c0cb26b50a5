"""HTTP transport: thin routers and middlewares over the data plane (``service.dataplane``)."""

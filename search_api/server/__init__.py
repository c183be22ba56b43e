"""The HTTP server: the FastAPI app, its routes (search, articles, stories, alerts, admin), auth, validation,
operations (Prometheus metrics, access log, limits) and the connection guard."""

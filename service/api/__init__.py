"""The nascreen HTTP API (FastAPI). Build it with `service.api.app.create_app(settings)`."""

"""The FastAPI service: settings, engine, micro-batcher, imaging, schemas, routes, metrics. Imports models only."""

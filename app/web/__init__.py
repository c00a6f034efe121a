"""The HTTP layer: the app and route classes, the request-head bound, dependencies, /docs, and the routes."""

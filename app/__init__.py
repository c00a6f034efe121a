"""The FastAPI service. Imports models only. Its folders follow a request down: ``web`` (the HTTP layer and
its ``routes``) -> ``latent_rows`` -> ``service`` -> ``batching`` -> ``compute`` (forward, then encode);
``runtime`` holds the process's settings and metrics, ``registry`` the loaded models, ``invert`` POST /invert."""

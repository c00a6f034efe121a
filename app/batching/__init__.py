"""Requests' latent rows -> batches: one queue and one future per request (``batcher``), flushed by a pure
``policy``."""

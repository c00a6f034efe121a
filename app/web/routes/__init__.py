"""HTTP routes, one module per concern; each handler validates, builds latent rows, awaits the batcher, encodes."""

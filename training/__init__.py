"""Training: data, the DCGAN loop, resumable training state, the generator export. Imports models, never app."""

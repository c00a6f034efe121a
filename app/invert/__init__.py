"""POST /invert's machinery: the capped multipart upload, and the inverter (its own threads, queue, deadline)."""

"""A batch's forward and its requests' encoding: the model on its device (``engine``), the worker threads
(``forward_pool``), what each request's images become (``outputs``) and the image bytes (``encoding``)."""

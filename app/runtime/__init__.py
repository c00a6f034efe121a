"""The process around the service: settings from the environment, Prometheus metrics, the usable CPUs and
the garbage collector's tuning."""

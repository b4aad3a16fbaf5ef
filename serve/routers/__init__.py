"""One router per resource: v1 classification, the v2 protocol, health, and Prometheus metrics."""

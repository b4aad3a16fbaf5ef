"""The KServe v2 / Open Inference Protocol: request parsing and response encoding (see docs/PROTOCOL.md)."""

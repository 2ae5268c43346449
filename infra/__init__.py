"""Infrastructure: the local stack (``infra.local``), Prometheus and Grafana configuration."""

"""The telemetry service (``gossamer telemetry serve``): Envoy's access logs in, exact
per-minute aggregates out (docs/telemetry.md)."""

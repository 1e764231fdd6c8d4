"""Global rate limits: ``gossamer ratelimit serve``, Envoy's RateLimitService in its own
process (docs/traffic.md). It reads its rules through the API, never the store."""

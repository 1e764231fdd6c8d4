"""Helpers for testing with real processes: Envoy on free loopback ports, small backends."""

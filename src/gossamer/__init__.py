"""Gossamer: a service mesh for VMs, bare metal and containers, with Envoy as its data plane."""

__version__ = "0.1.0"

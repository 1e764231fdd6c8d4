"""``gossamer agent``: makes a host a mesh member (join, register, run Envoy, health-check)."""

"""The control-plane server: the composition root that wires store, reconciler, xDS,
agent registry, NGAC engine and REST API (``create_app``), its HTTP server and the
``gossamer control-plane`` entry point."""

"""An SDS server for the Envoys of one host: the agent's sidecars (``identity``,
``trust-bundle``) and a gateway runner's Envoy (its external certificates, read from files).

``server.SdsServer`` serves ``envoy.service.secret.v3.SecretDiscoveryService`` on a Unix
socket; ``secrets.SecretCache`` holds what each proxy (node id) may get; ``protocol``
holds the per-stream state-of-the-world rules without I/O.
"""

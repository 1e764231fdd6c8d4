"""The host side of workload identity: the agent's SDS server (Envoy asks it for the
``identity`` and ``trust-bundle`` secrets over a Unix socket), the secrets it serves, and
the loop that keeps each service's certificate fresh (key on the host, CSR to the control
plane, rotation at about half the certificate's lifetime)."""

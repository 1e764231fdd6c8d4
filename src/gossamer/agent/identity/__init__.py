"""The host side of workload identity: the loop that keeps each service's certificate fresh
(key on the host, CSR to the control plane, rotation at about half the certificate's
lifetime). Envoy gets the result (``identity`` and ``trust-bundle``) from the SDS server
in ``gossamer.envoy.sds`` over a Unix socket."""

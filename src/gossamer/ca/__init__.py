"""The mesh's certificate authority: workload identities (SPIFFE X.509 SVIDs) for hosts
that prove themselves, signed from a root generated on first start or an operator's
intermediate (docs/security.md, "The CA")."""

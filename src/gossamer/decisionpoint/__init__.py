"""``gossamer authz serve``: the NGAC decision point Envoy's ``ext_authz`` asks about end
users (docs/ngac.md, "End users")."""

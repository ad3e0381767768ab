"""People: users signed in through OpenID Connect (by `sub`), their memberships per sandbox with a role, and the
pure reading of a roles claim (role_claims.py)."""

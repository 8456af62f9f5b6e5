"""Authentication: JWT access tokens (verified by the API and the live stream), roles."""

from algotrendy.auth.tokens import Role, TokenClaims, TokenError, issue_token, verify_token

__all__ = ["Role", "TokenClaims", "TokenError", "issue_token", "verify_token"]

"""Business rule sets over GraphQL."""

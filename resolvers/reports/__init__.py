"""Campaign reports and the resend of a run's failed deliveries in GraphQL."""

"""GraphQL for outbound webhooks (ADMIN): endpoints, their deliveries, replay."""

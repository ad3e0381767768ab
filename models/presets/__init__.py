"""Message presets: the model, its pure rules, sealed secrets and the audited actions."""

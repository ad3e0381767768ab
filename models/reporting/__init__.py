"""Reports, tracking (events, links, tokens) and provider feedback."""

"""Business rule sets (issue 18): frequency caps and quiet hours per channel, enforced at send time."""

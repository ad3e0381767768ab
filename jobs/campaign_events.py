"""Event topics about campaigns (published by the API and the workers, read by subscriptions)."""

CAMPAIGN_STATUS_TOPIC = "campaign.status"
CAMPAIGN_RUN_PROGRESS_TOPIC = "campaign.run.progress"

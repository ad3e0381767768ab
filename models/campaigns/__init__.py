"""Campaigns: the model and runs, pure rules (rules, schedule, review, review_snapshot, templates, email_html),
the audited actions, previews and resend."""

"""API-triggered sends (issue 17): one CampaignTrigger per accepted API call, its recipients as ledger rows of a
run of their own. `trigger.py` holds the table, `values.py` the pure input rules, `accept.py` the one domain
function behind GraphQL and REST."""

"""Approval policies (ADMIN): conditions → approvers, k of n, no self-approval. A campaign a policy matches is
reviewed by people before it goes live: model.py (policies and the decisions on a campaign), rules.py (pure:
matching, eligibility, the tally), actions.py (request, approve, request changes; the check at activation)."""

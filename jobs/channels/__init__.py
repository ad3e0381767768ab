"""Channel adapters, transport only: `base.OutgoingMessage`s in, one `base.SendResult` out per message.

base.py   the protocol, results, backoff · email.py + email_message.py   SMTP (aiosmtplib), message bytes
sms.py    Twilio-style REST · push.py   FCM HTTP v1 · inapp.py   inbox rows · http.py   shared HTTP helpers
"""

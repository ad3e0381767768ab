"""The ledger's closed sets: delivery statuses and the one reason enum (DESIGN §9: every way a recipient is
not sent to, and every way a send fails, is a value here), each value with its description. Pure: the GraphQL
enums wrap these in resolvers/vocabulary.py."""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    TARGETED = "TARGETED"
    EXCLUDED = "EXCLUDED"
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    BOUNCED = "BOUNCED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    UNCONFIRMED = "UNCONFIRMED"


DELIVERY_STATUS_DESCRIPTIONS: dict[DeliveryStatus, str] = {
    DeliveryStatus.TARGETED: "In the audience snapshot, not judged yet.",
    DeliveryStatus.EXCLUDED: "Not sent to, for the reason given (no identity, no consent, suppressed, …).",
    DeliveryStatus.QUEUED: "Waiting to be sent; with a reason, waiting for a retry after a temporary failure.",
    DeliveryStatus.SENDING: "Being sent by a worker now.",
    DeliveryStatus.SENT: "Accepted by the provider.",
    DeliveryStatus.DELIVERED: "Reported delivered by the provider.",
    DeliveryStatus.BOUNCED: "Reported bounced by the provider after it was accepted (see `bounceType`).",
    DeliveryStatus.FAILED: "Could not be sent, for the reason given; not retried.",
    DeliveryStatus.CANCELLED: "Not sent: the run was stopped first.",
    DeliveryStatus.UNCONFIRMED: "Sent to the provider, which did not answer (a timeout after the request went): "
    "held, not resent, until its status callback or the unconfirmed window settles it.",
}


class DeliveryReason(StrEnum):
    """Why a profile got no message (EXCLUDED), why a send failed (FAILED, BOUNCED), or why it waits for a retry
    (QUEUED). The channel adapters' FailureCode values are a subset (a unit test holds it)."""

    # Exclusions, decided at the audience snapshot (and reported alike by the review plan).
    NO_IDENTITY = "NO_IDENTITY"
    NO_ADDRESS = "NO_ADDRESS"
    MALFORMED_ADDRESS = "MALFORMED_ADDRESS"
    NO_CONSENT = "NO_CONSENT"
    SUPPRESSED = "SUPPRESSED"
    THROTTLE_CUTOFF = "THROTTLE_CUTOFF"
    HOLDOUT = "HOLDOUT"
    AWAITING_WINNER = "AWAITING_WINNER"
    # Business rules, decided at send time (models/business_rules).
    FREQUENCY_CAPPED = "FREQUENCY_CAPPED"
    QUIET_HOURS = "QUIET_HOURS"
    # Failures of the run itself.
    TEMPLATE_ERROR = "TEMPLATE_ERROR"
    RETRY_EXPIRED = "RETRY_EXPIRED"
    UNCONFIRMED_TIMEOUT = "UNCONFIRMED_TIMEOUT"
    # Provider answers (jobs.channels.base.FailureCode) and feedback.
    HARD_BOUNCE = "HARD_BOUNCE"
    SOFT_BOUNCE = "SOFT_BOUNCE"
    MAILBOX_FULL = "MAILBOX_FULL"
    MESSAGE_REJECTED = "MESSAGE_REJECTED"
    SENDER_REJECTED = "SENDER_REJECTED"
    AUTH_FAILED = "AUTH_FAILED"
    CONFIGURATION = "CONFIGURATION"
    INVALID_ADDRESS = "INVALID_ADDRESS"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    UNREGISTERED = "UNREGISTERED"
    PROVIDER_REJECTED = "PROVIDER_REJECTED"
    ADDRESS_NOT_ALLOWED = "ADDRESS_NOT_ALLOWED"
    CONNECTION = "CONNECTION"
    TIMEOUT = "TIMEOUT"
    THROTTLED = "THROTTLED"
    TEMPORARY = "TEMPORARY"
    # A value stored by another version of Herald that this one does not know.
    UNKNOWN = "UNKNOWN"

    @classmethod
    def of(cls, value: str | None) -> DeliveryReason | None:
        """The member for a stored value; UNKNOWN for one this version does not know (never an error)."""
        if value is None:
            return None
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


# The reasons the audience snapshot writes, in the order it checks them.
EXCLUSION_REASONS = (
    DeliveryReason.NO_IDENTITY,
    DeliveryReason.NO_ADDRESS,
    DeliveryReason.MALFORMED_ADDRESS,
    DeliveryReason.NO_CONSENT,
    DeliveryReason.SUPPRESSED,
    DeliveryReason.THROTTLE_CUTOFF,
    DeliveryReason.HOLDOUT,
    DeliveryReason.AWAITING_WINNER,
)

DELIVERY_REASON_DESCRIPTIONS: dict[DeliveryReason, str] = {
    DeliveryReason.NO_IDENTITY: "The profile has no identity in the campaign's namespace.",
    DeliveryReason.NO_ADDRESS: "The profile has no address on the campaign's channel.",
    DeliveryReason.MALFORMED_ADDRESS: "The address cannot be an address on the channel (e.g. no @, no +).",
    DeliveryReason.NO_CONSENT: "A marketing message, and the profile said no to the channel.",
    DeliveryReason.SUPPRESSED: "The address is on the sandbox's suppression list for the channel.",
    DeliveryReason.THROTTLE_CUTOFF: "Beyond what the campaign's throttle can send in 12 hours.",
    DeliveryReason.HOLDOUT: "In the holdout of the campaign's content experiment: kept from every treatment.",
    DeliveryReason.AWAITING_WINNER: "Outside the test share of a test-then-winner experiment: the winner goes to "
    "this profile in the campaign's next run.",
    DeliveryReason.FREQUENCY_CAPPED: "A frequency cap of the campaign's business rules: the profile had its "
    "quota of messages on the channel and category in the period.",
    DeliveryReason.QUIET_HOURS: "Inside the quiet hours of the campaign's business rules in the profile's time "
    "zone: skipped (EXCLUDED), or waiting for the hours to end (QUEUED).",
    DeliveryReason.TEMPLATE_ERROR: "The message could not be rendered for this profile.",
    DeliveryReason.RETRY_EXPIRED: "Temporary failures went on past the preset's retry period.",
    DeliveryReason.UNCONFIRMED_TIMEOUT: "Sent with no answer, and no status callback came within the window: not "
    "resent (at most once).",
    DeliveryReason.HARD_BOUNCE: "The recipient address does not exist or is refused for good.",
    DeliveryReason.SOFT_BOUNCE: "A bounce reported as temporary (e.g. mailbox full); not retried.",
    DeliveryReason.MAILBOX_FULL: "The recipient's mailbox is full.",
    DeliveryReason.MESSAGE_REJECTED: "The provider refused the content (e.g. SMTP 5xx after DATA).",
    DeliveryReason.SENDER_REJECTED: "The provider refused the sender address or number.",
    DeliveryReason.AUTH_FAILED: "The provider refused the preset's credentials.",
    DeliveryReason.CONFIGURATION: "The preset's connection setup failed (STARTTLS missing, untrusted certificate).",
    DeliveryReason.INVALID_ADDRESS: "The address cannot be used on this channel (bad characters, bad number).",
    DeliveryReason.INVALID_MESSAGE: "The rendered message cannot be encoded or sent as given.",
    DeliveryReason.UNREGISTERED: "The push token is no longer valid.",
    DeliveryReason.PROVIDER_REJECTED: "Any other permanent refusal by the provider.",
    DeliveryReason.ADDRESS_NOT_ALLOWED: "The provider's host is refused by the outbound network policy.",
    DeliveryReason.CONNECTION: "The provider could not be reached (temporary).",
    DeliveryReason.TIMEOUT: "The provider did not answer in time (temporary).",
    DeliveryReason.THROTTLED: "The provider asked to slow down (temporary).",
    DeliveryReason.TEMPORARY: "The provider refused for now (SMTP 4xx, HTTP 5xx).",
    DeliveryReason.UNKNOWN: "A reason stored by another version of Herald.",
}

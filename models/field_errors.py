"""The closed set of field error codes (`FieldError.code`, `ImportRejectedRow.code`): every code a validator in
models/ or resolvers/ gives a refused input field or import row, each with its description. Pure.

tests/unit/test_vocabulary.py finds every code literal passed to a problem or field error and checks it is here."""

from __future__ import annotations

from enum import StrEnum


class FieldErrorCode(StrEnum):
    REQUIRED = "REQUIRED"
    EMPTY = "EMPTY"
    INVALID = "INVALID"
    INVALID_VALUE = "INVALID_VALUE"
    INVALID_TYPE = "INVALID_TYPE"
    INVALID_CHARACTER = "INVALID_CHARACTER"
    INVALID_CHARACTERS = "INVALID_CHARACTERS"
    NOT_A_STRING = "NOT_A_STRING"
    RESERVED_KEY = "RESERVED_KEY"
    NOT_VERSIONED = "NOT_VERSIONED"
    INVALID_CODE = "INVALID_CODE"
    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_PHONE = "INVALID_PHONE"
    INVALID_NUMBER = "INVALID_NUMBER"
    INVALID_KEY = "INVALID_KEY"
    INVALID_PATH = "INVALID_PATH"
    INVALID_NODE = "INVALID_NODE"
    INVALID_JSON = "INVALID_JSON"
    INVALID_ENCODING = "INVALID_ENCODING"
    MALFORMED_ROW = "MALFORMED_ROW"
    NOT_AN_OBJECT = "NOT_AN_OBJECT"
    UNKNOWN_FIELD = "UNKNOWN_FIELD"
    UNKNOWN_OPERATOR = "UNKNOWN_OPERATOR"
    UNKNOWN_NAMESPACE = "UNKNOWN_NAMESPACE"
    UNKNOWN_TIME_ZONE = "UNKNOWN_TIME_ZONE"
    TIMEZONE_INVALID = "TIMEZONE_INVALID"
    LOCAL_TIME_INVALID = "LOCAL_TIME_INVALID"
    NAIVE_DATETIME = "NAIVE_DATETIME"
    END_BEFORE_START = "END_BEFORE_START"
    BEFORE_START = "BEFORE_START"
    FREQUENCY_INVALID = "FREQUENCY_INVALID"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    TOO_LONG = "TOO_LONG"
    TOO_LARGE = "TOO_LARGE"
    TOO_MANY = "TOO_MANY"
    TOO_MANY_CONDITIONS = "TOO_MANY_CONDITIONS"
    TOO_DEEP = "TOO_DEEP"
    TOO_COMPLEX = "TOO_COMPLEX"
    COUNT = "COUNT"
    ONE_OF = "ONE_OF"
    NOT_FOUND = "NOT_FOUND"
    NO_PROFILE = "NO_PROFILE"
    NOT_TEST_PROFILE = "NOT_TEST_PROFILE"
    NOT_STATIC = "NOT_STATIC"
    NOT_ALLOWED = "NOT_ALLOWED"
    READ_ONLY = "READ_ONLY"
    TAKEN = "TAKEN"
    NAME_TAKEN = "NAME_TAKEN"
    CYCLE = "CYCLE"
    IDENTITY_CONFLICT = "IDENTITY_CONFLICT"
    CHANNEL_MISMATCH = "CHANNEL_MISMATCH"
    INVALID_CHOICE = "INVALID_CHOICE"
    INVALID_FORMAT = "INVALID_FORMAT"
    INVALID_HOST = "INVALID_HOST"
    INVALID_NAME = "INVALID_NAME"
    INVALID_URL = "INVALID_URL"
    UNKNOWN_EVENT = "UNKNOWN_EVENT"
    MISSING = "MISSING"
    INVALID_SERVICE_ACCOUNT = "INVALID_SERVICE_ACCOUNT"
    ADDRESS_NOT_ALLOWED = "ADDRESS_NOT_ALLOWED"
    # A code stored by another version of Herald (e.g. in an old import's rejected rows).
    UNKNOWN = "UNKNOWN"

    @classmethod
    def of(cls, value: str) -> FieldErrorCode:
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


FIELD_ERROR_CODE_DESCRIPTIONS: dict[FieldErrorCode, str] = {
    FieldErrorCode.REQUIRED: "A value is required.",
    FieldErrorCode.EMPTY: "The value must not be empty.",
    FieldErrorCode.INVALID: "The value is not valid here (the message says why).",
    FieldErrorCode.INVALID_VALUE: "The value does not fit the field (type or form).",
    FieldErrorCode.INVALID_TYPE: "The value has the wrong type.",
    FieldErrorCode.INVALID_CHARACTER: "The value contains a character that is not allowed.",
    FieldErrorCode.INVALID_CHARACTERS: "The value contains control or other refused characters.",
    FieldErrorCode.NOT_A_STRING: "Must be a string (push custom data is a string map: send JSON as text).",
    FieldErrorCode.RESERVED_KEY: "A key the provider reserves (FCM: `from`, `message_type`, `google*`, `gcm*`).",
    FieldErrorCode.NOT_VERSIONED: "Cannot change on an activated campaign: its versions hold content, tracking, "
    "preset and throttle only (duplicate the campaign to change the rest).",
    FieldErrorCode.INVALID_CODE: "Not a valid code (letters, digits, dashes or underscores).",
    FieldErrorCode.INVALID_EMAIL: "Not a valid email address.",
    FieldErrorCode.INVALID_PHONE: "Not a valid phone number.",
    FieldErrorCode.INVALID_NUMBER: "Not a valid number.",
    FieldErrorCode.INVALID_KEY: "Not a valid attribute key.",
    FieldErrorCode.INVALID_PATH: "Not a valid profile path.",
    FieldErrorCode.INVALID_NODE: "A segment rule node is not well formed.",
    FieldErrorCode.INVALID_JSON: "An import line is not valid JSON.",
    FieldErrorCode.INVALID_ENCODING: "An import line is not valid UTF-8.",
    FieldErrorCode.MALFORMED_ROW: "An import row cannot be read (e.g. wrong number of columns).",
    FieldErrorCode.NOT_AN_OBJECT: "A JSON object was expected.",
    FieldErrorCode.UNKNOWN_FIELD: "An import column or field Herald does not know.",
    FieldErrorCode.UNKNOWN_OPERATOR: "A segment rule operator Herald does not know.",
    FieldErrorCode.UNKNOWN_NAMESPACE: "No identity namespace with that code in this sandbox.",
    FieldErrorCode.UNKNOWN_TIME_ZONE: "Not an IANA time zone.",
    FieldErrorCode.TIMEZONE_INVALID: "The schedule's time zone is not an IANA time zone.",
    FieldErrorCode.LOCAL_TIME_INVALID: "A local-time option that does not apply (NEXT_DAY without PROFILE_TIME_ZONE).",
    FieldErrorCode.NAIVE_DATETIME: "A time without an offset; give one (e.g. Z or +02:00).",
    FieldErrorCode.END_BEFORE_START: "The end comes before the start.",
    FieldErrorCode.BEFORE_START: "The end of a range comes before its start.",
    FieldErrorCode.FREQUENCY_INVALID: "The frequency's details are missing or do not fit it.",
    FieldErrorCode.OUT_OF_RANGE: "The number is outside the allowed range.",
    FieldErrorCode.TOO_LONG: "The text is longer than allowed.",
    FieldErrorCode.TOO_LARGE: "The value is larger than allowed.",
    FieldErrorCode.TOO_MANY: "More items than allowed.",
    FieldErrorCode.TOO_MANY_CONDITIONS: "The segment rule has more conditions than allowed.",
    FieldErrorCode.TOO_DEEP: "Nested deeper than allowed.",
    FieldErrorCode.TOO_COMPLEX: "The segment is too complex to evaluate.",
    FieldErrorCode.COUNT: "Too many or too few items in one request.",
    FieldErrorCode.ONE_OF: "Give exactly one of the alternatives.",
    FieldErrorCode.NOT_FOUND: "Nothing with that id in this sandbox.",
    FieldErrorCode.NO_PROFILE: "No profile with that identity in this sandbox.",
    FieldErrorCode.NOT_TEST_PROFILE: "The profile is not marked as a test profile.",
    FieldErrorCode.NOT_STATIC: "Only a STATIC segment has listed members.",
    FieldErrorCode.NOT_ALLOWED: "Not allowed in this state or for this object.",
    FieldErrorCode.READ_ONLY: "The field cannot be changed.",
    FieldErrorCode.TAKEN: "Already used by another object of this sandbox.",
    FieldErrorCode.NAME_TAKEN: "The name is already used in this sandbox.",
    FieldErrorCode.CYCLE: "The segment would include itself.",
    FieldErrorCode.IDENTITY_CONFLICT: "The identity belongs to another profile.",
    FieldErrorCode.CHANNEL_MISMATCH: "The setting does not fit the preset's channel.",
    FieldErrorCode.INVALID_CHOICE: "Not one of the allowed values.",
    FieldErrorCode.INVALID_FORMAT: "The value does not have the expected form.",
    FieldErrorCode.INVALID_HOST: "Not a valid host name or IP address.",
    FieldErrorCode.INVALID_NAME: "Not a valid name (e.g. a header name).",
    FieldErrorCode.INVALID_URL: "Not a valid URL.",
    FieldErrorCode.UNKNOWN_EVENT: "Not an event a webhook endpoint can subscribe to.",
    FieldErrorCode.MISSING: "Required fields are missing from the input.",
    FieldErrorCode.INVALID_SERVICE_ACCOUNT: "Not a valid service account document.",
    FieldErrorCode.ADDRESS_NOT_ALLOWED: "The host is refused by the outbound network policy.",
    FieldErrorCode.UNKNOWN: "A code stored by another version of Herald.",
}

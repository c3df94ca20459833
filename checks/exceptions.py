"""Typed validation errors with default messages (the python-stdnum pattern).

`is_valid` functions catch only `ValidationError`, so a real bug still surfaces.
"""


class ValidationError(ValueError):
    message = "the number is invalid"

    def __init__(self, message: str | None = None):
        super().__init__(message or self.message)


class InvalidFormat(ValidationError):
    message = "the number has an invalid format"


class InvalidLength(InvalidFormat):
    message = "the number has an invalid length"


class InvalidChecksum(ValidationError):
    message = "the check character is wrong"


class InvalidComponent(ValidationError):
    message = "a component of the number is invalid (birth date or address code)"


class Corrupted(InvalidFormat):
    message = "the number was damaged by a spreadsheet"

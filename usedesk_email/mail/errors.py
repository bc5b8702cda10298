"""Typed errors of the mail engine.

Every message is meant for a site admin's eyes: it says what went wrong and never
carries a password or token (callers pass secrets to `redact`).
"""


class MailError(Exception):
	"""Base of every error the engine raises on purpose."""


class ConfigError(MailError):
	"""Settings that cannot work (missing host, bad port, unknown encryption)."""


class MailConnectionError(MailError):
	"""The server could not be reached, or the connection broke."""


class MailTimeoutError(MailConnectionError):
	"""The server accepted the connection but did not answer in time."""


class TLSError(MailConnectionError):
	"""TLS could not be set up: bad certificate, or STARTTLS not offered."""


class AuthenticationError(MailError):
	"""The server refused the credentials."""


class ProtocolError(MailError):
	"""The server answered something the protocol does not allow here."""


class ComposeError(MailError):
	"""An outgoing letter cannot be built from what was given (bad address, too large)."""


def megabytes(size: int) -> str:
	"""A size as people read it ("12.4 MB", "5 KB" when small), for messages; raw byte counts
	say little."""
	if size < 100 * 1024:
		return f"{max(1, round(size / 1024))} KB"
	return f"{size / (1024 * 1024):.1f} MB"


def redact(text: str, *secrets: str | None) -> str:
	"""Remove every secret from a text that may reach a log or a form."""
	for secret in secrets:
		if secret:
			text = text.replace(secret, "********")
	return text

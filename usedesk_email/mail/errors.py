"""Typed errors of the mail engine.

Every message is meant for a site admin's eyes: it says what went wrong, what to change
where it can tell, and never carries a password or token (callers pass secrets to `redact`).
"""

import ssl

# The channel form's field for a private CA, named as the form shows it.
CA_FIELD = "Trusted CA Certificate (PEM)"
SSL_PORTS = {465: "SMTP", 993: "IMAP"}  # where the server speaks TLS from the first byte
STARTTLS_PORTS = {"SMTP": 587, "IMAP": 143}
# OpenSSL's reasons when the other side does not answer a TLS handshake with TLS: it speaks
# plain text on that port (mostly a STARTTLS port).
_NOT_TLS = {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}


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


def tls_problem(error: ssl.SSLError, protocol: str, security: str, port: int) -> str:
	"""What a TLS failure means for the settings: the server that answered SSL with plain
	text expects STARTTLS; an untrusted certificate needs the right CA or host name."""
	if isinstance(error, ssl.SSLCertVerificationError):
		if error.verify_code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
			return (
				f"the server's certificate is for another host name ({error.verify_message}); "
				"enter the host name the certificate names"
			)
		return (
			f"the server's certificate is not trusted ({error.verify_message}); if a private CA "
			f"signed it, paste that CA's certificate into {CA_FIELD}"
		)
	if security == "ssl" and getattr(error, "reason", None) in _NOT_TLS:
		return (
			f"the server expects STARTTLS on port {port}, not SSL: choose STARTTLS "
			f"(usually port {STARTTLS_PORTS.get(protocol, 587)}), or the server's SSL port"
		)
	return f"TLS failed ({error})"


def ssl_port_hint(protocol: str, security: str, port: int) -> str:
	"""For a silent server: on an SSL port it waits for a TLS handshake we never started."""
	if security != "ssl" and SSL_PORTS.get(port) == protocol:
		return f"; port {port} usually expects SSL from the start: choose SSL"
	return ""


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

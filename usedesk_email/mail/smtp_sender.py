"""Sending composed letters over SMTP, with a verdict per recipient that is safe to act on.

A reply is several letters (one per recipient, plus the BCC copy), sent in one SMTP
session. What happened to each letter decides what the caller may do next, so the
sender tells four outcomes apart instead of raising on the first problem:

- ``sent``: the server answered 2xx to the end of the data;
- ``temporary``: a 4xx, or the connection was lost before the whole data went out
  (the server cannot have accepted it): safe to retry later;
- ``permanent``: a 5xx (unknown user, refused sender, too big): retrying will not help;
- ``uncertain``: the data went out but no reply came (timeout, connection lost). The
  server may have queued it, so it is **never resent automatically**; an agent decides.

One recipient refused does not stop the others: the transaction is reset and the next
letter goes. Once the connection is lost, the letters not tried yet are ``temporary``
without a new session, so a flaky server does not get hammered. What stops the whole
reply (nothing could be sent) raises instead: `MailConnectionError`, `MailTimeoutError`,
`TLSError`, `AuthenticationError`, `ConfigError` - each message redacted of the password
and token.

Security: certificates and host names are always verified; `ca_file` trusts a private CA
instead of switching checks off. ``starttls`` fails closed (`TLSError`) when the server
does not offer STARTTLS, rather than sending credentials and mail in clear. AUTH is used
when a username is given: XOAUTH2 with `oauth2_token`, else the best password mechanism
the server offers. The data phase is driven here (not through ``sendmail``) because only
this tells "no reply to DATA" (temporary) from "no reply after the data" (uncertain);
lines starting with a dot are dot-stuffed as RFC 5321 requires.
"""

import re
import smtplib
import socket
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from usedesk_email.mail.compose import Letter
from usedesk_email.mail.errors import (
	AuthenticationError,
	ConfigError,
	MailConnectionError,
	MailError,
	MailTimeoutError,
	TLSError,
	redact,
	ssl_port_hint,
	tls_problem,
)

SECURITIES = ("ssl", "starttls", "none")


@dataclass(frozen=True)
class SmtpSettings:
	host: str
	port: int
	security: str  # "ssl" | "starttls" | "none", any case
	username: str = ""
	password: str = field(default="", repr=False)
	oauth2_token: str = field(default="", repr=False)  # XOAUTH2 (Office 365, Gmail) instead of a password
	ca_file: str | Path | None = None
	timeout: float = 30
	local_hostname: str | None = None

	def __post_init__(self) -> None:
		object.__setattr__(self, "security", (self.security or "").lower())
		if not (self.host or "").strip():
			raise ConfigError("SMTP host is empty")
		if not isinstance(self.port, int) or not 0 < self.port < 65536:
			raise ConfigError(f"SMTP port {self.port!r} is not a port number (1-65535)")
		if self.security not in SECURITIES:
			raise ConfigError(f"SMTP security {self.security!r} is not one of {', '.join(SECURITIES)}")
		if self.ca_file is not None and not Path(self.ca_file).is_file():
			raise ConfigError(f"CA file {str(self.ca_file)!r} does not exist")
		if self.timeout <= 0:
			raise ConfigError("SMTP timeout must be positive")
		if (self.password or self.oauth2_token) and not self.username:
			raise ConfigError("SMTP credentials need a username")


class Outcome(str, Enum):
	SENT = "sent"
	TEMPORARY = "temporary"
	PERMANENT = "permanent"
	UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class SendResult:
	recipient: str  # the envelope recipient (ASCII form)
	message_id: str  # of the letter, without angle brackets
	outcome: Outcome
	code: int | None = None  # the server's reply code, when there was one
	detail: str = ""  # the server's reply or what went wrong; never a secret
	bcc: bool = False


def send(settings: SmtpSettings, letters: Sequence[Letter]) -> list[SendResult]:
	"""Send all letters of one reply in one session; one result per letter, in order."""
	results: list[SendResult] = []
	if not letters:
		return results
	with _session(settings) as smtp:
		alive = True
		for letter in letters:
			if alive:
				result, alive = _send_letter(smtp, letter)
			else:
				result = _result(letter, Outcome.TEMPORARY, None, "not tried: the connection was lost")
			results.append(_redacted(result, settings))
	return results


@contextmanager
def _session(settings: SmtpSettings) -> Iterator[smtplib.SMTP]:
	smtp = _open(settings)
	try:
		yield smtp
	finally:
		try:
			smtp.quit()
		except (smtplib.SMTPException, OSError):
			smtp.close()


def _open(settings: SmtpSettings) -> smtplib.SMTP:
	"""Connected, encrypted as configured, and logged in; or a typed, redacted error."""
	where = f"{settings.host}:{settings.port}"
	smtp: smtplib.SMTP | None = None
	try:
		context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
		if settings.security == "ssl":
			smtp = smtplib.SMTP_SSL(
				settings.host,
				settings.port,
				local_hostname=settings.local_hostname,
				timeout=settings.timeout,
				context=context,
			)
		else:
			smtp = smtplib.SMTP(
				settings.host, settings.port, local_hostname=settings.local_hostname, timeout=settings.timeout
			)
		smtp.ehlo_or_helo_if_needed()
		if settings.security == "starttls":
			if not smtp.has_extn("starttls"):
				raise TLSError(f"{where} does not offer STARTTLS; refusing to continue unencrypted")
			try:
				smtp.starttls(context=context)
			except smtplib.SMTPResponseException as error:
				reply = f"{error.smtp_code} {error.smtp_error.decode(errors='replace')}"
				raise TLSError(f"{where} refused STARTTLS: {reply}") from None
			smtp.ehlo()
		if settings.username:
			_login(smtp, settings, where)
		return smtp
	except Exception as error:
		if smtp is not None:
			smtp.close()
		if isinstance(error, MailError):
			raise
		raise _session_error(error, settings, where) from None


def _login(smtp: smtplib.SMTP, settings: SmtpSettings, where: str) -> None:
	if not smtp.has_extn("auth"):
		raise AuthenticationError(f"{where} does not offer AUTH on this connection; cannot log in")
	if not settings.oauth2_token:
		smtp.login(settings.username, settings.password)
		return
	if "XOAUTH2" not in smtp.esmtp_features["auth"].upper().split():
		raise AuthenticationError(f"{where} does not offer XOAUTH2")
	initial = f"user={settings.username}\x01auth=Bearer {settings.oauth2_token}\x01\x01"
	# On failure the server sends a 334 with an error; the empty answer lets it finish with 5xx.
	smtp.auth("XOAUTH2", lambda challenge=None: initial if challenge is None else "")


def _session_error(error: Exception, settings: SmtpSettings, where: str) -> MailError:
	text = f"{type(error).__name__}: {error}"
	if isinstance(error, smtplib.SMTPAuthenticationError):
		reply = error.smtp_error.decode(errors="replace")
		cls, text = (
			AuthenticationError,
			f"{where} refused the login of {settings.username!r}: {error.smtp_code} {reply}",
		)
	elif isinstance(error, ssl.SSLError):
		cls, text = TLSError, f"{where}: {tls_problem(error, 'SMTP', settings.security, settings.port)}"
	elif isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError):
		hint = ssl_port_hint("SMTP", settings.security, settings.port)
		cls, text = MailTimeoutError, f"{where} did not answer within {settings.timeout:g} s{hint}"
	elif isinstance(error, smtplib.SMTPResponseException):
		reply = error.smtp_error.decode(errors="replace")
		cls, text = MailConnectionError, f"{where} refused the session: {error.smtp_code} {reply}"
	elif isinstance(error, socket.gaierror):
		cls, text = MailConnectionError, f"cannot resolve {settings.host!r}: {error}"
	else:
		cls, text = MailConnectionError, f"cannot talk to {where}: {text}"
	return cls(redact(text, settings.password, settings.oauth2_token))


def _send_letter(smtp: smtplib.SMTP, letter: Letter) -> tuple[SendResult, bool]:
	"""The letter's result, and whether the session can carry the next letter."""
	raw = letter.raw
	try:
		options = [f"SIZE={len(raw)}"] if smtp.has_extn("size") else []
		code, reply = smtp.mail(letter.sender, options)
		if code == 250:
			code, reply = smtp.rcpt(letter.recipient)
		if code in (250, 251):
			smtp.putcmd("data")
			code, reply = smtp.getreply()
		if code != 354:
			outcome = Outcome.PERMANENT if 500 <= code < 600 else Outcome.TEMPORARY
			return _result(letter, outcome, code, reply), _reset(smtp)
		smtp.send(_dot_stuffed(raw))
	except (smtplib.SMTPException, OSError) as error:
		detail = f"connection lost before the letter was accepted: {error}"
		return _result(letter, Outcome.TEMPORARY, None, detail), False
	try:
		code, reply = smtp.getreply()
	except (smtplib.SMTPException, OSError) as error:
		detail = f"no answer after the data was sent ({error}); it may have been delivered"
		return _result(letter, Outcome.UNCERTAIN, None, detail), False
	outcome = {2: Outcome.SENT, 4: Outcome.TEMPORARY, 5: Outcome.PERMANENT}.get(
		code // 100, Outcome.UNCERTAIN
	)
	return _result(letter, outcome, code, reply), code != 421


def _reset(smtp: smtplib.SMTP) -> bool:
	try:
		return smtp.rset()[0] == 250
	except (smtplib.SMTPException, OSError):
		return False


def _dot_stuffed(raw: bytes) -> bytes:
	data = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
	if not data.endswith(b"\r\n"):
		data += b"\r\n"
	return re.sub(rb"(?m)^\.", b"..", data) + b".\r\n"


def _result(letter: Letter, outcome: Outcome, code: int | None, detail: str | bytes) -> SendResult:
	if isinstance(detail, bytes):
		detail = detail.decode(errors="replace")
	return SendResult(letter.recipient, letter.message_id, outcome, code, detail, letter.bcc)


def _redacted(result: SendResult, settings: SmtpSettings) -> SendResult:
	detail = redact(result.detail, settings.password, settings.oauth2_token)
	return result if detail == result.detail else SendResult(**{**result.__dict__, "detail": detail})


def check_connection(settings: SmtpSettings) -> str:
	"""Connect, secure and log in as for a send, but send nothing: the form's Test Connection."""
	with _session(settings) as smtp:
		secured = {"ssl": "TLS", "starttls": "STARTTLS"}.get(settings.security, "no encryption")
		login = f"logged in as {settings.username!r}" if settings.username else "no login"
		return f"{settings.host}:{settings.port} over {secured}, {login}; size limit {smtp.esmtp_features.get('size', 'not announced')}"

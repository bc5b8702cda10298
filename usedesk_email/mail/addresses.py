"""Addresses and header text for outgoing letters, safe against header injection.

Subjects, display names and addresses of a reply come from inbound mail, so they are
hostile input. Python's `email` package decodes RFC 2047 encoded words whenever a header
is set from a str (even inside a word: ``x=?utf-8?q?=0D=0A?=``), so an encoded CR LF
becomes a real line break and thus an extra header. `header_text` therefore decodes with
that very parser until nothing decodes any more and turns every control character into a
space: what is set is exactly what the reader sees, on one line.

Addresses are strict rather than clever, because a wrong address fails late and far
away (a bounce days later) while a refused one is fixed by the agent at once:
- one ``@``, a dot-atom local part of printable ASCII (no quoted local parts, no
  whitespace, no ``=?``); a non-ASCII local part would need SMTPUTF8, which many servers
  lack, so it is refused with `ComposeError` rather than sent and bounced;
- the domain is IDNA-encoded with the standard library's codec (IDNA 2003, as mail
  clients still do) and must have at least two labels of letters, digits and hyphens.
"""

import re
from email import policy
from email.headerregistry import Address as HeaderAddress

from usedesk_email.mail.errors import ComposeError
from usedesk_email.mail.message import Address

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
_SURROGATES = re.compile("[\ud800-\udfff]")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_DECODE_ROUNDS = 5
NAME_MAX = 128  # longer display names are junk, and an unbroken one would exceed SMTP's line limit


def without_surrogates(value: str) -> str:
	"""Lone surrogates (bytes a lenient decoder could not decode) as U+FFFD: they cannot be encoded."""
	return _SURROGATES.sub("\ufffd", value)


def header_text(value: str) -> str:
	"""One line of plain text for a header, with RFC 2047 words decoded (also nested ones)."""
	text = _CONTROL.sub(" ", without_surrogates(value or ""))
	for _ in range(_DECODE_ROUNDS):
		decoded = str(policy.SMTP.header_factory("Subject", text))
		decoded = _CONTROL.sub(" ", without_surrogates(decoded))
		if decoded == text:
			break
		text = decoded
	return _SPACES.sub(" ", text).strip()


def header_phrase(value: str, limit: int) -> str:
	"""`header_text` for a display name or file name, at most `limit` characters.

	The email package parses these again as a phrase or a MIME parameter, with rules of
	its own for what an encoded word is, so any "=?" still left is split apart.
	"""
	return header_text(value).replace("=?", "= ?")[:limit].strip()


def idna_domain(domain: str, what: str) -> str:
	"""The ASCII (IDNA) form of a mail domain, lower-cased; `what` names it in errors."""
	try:
		ascii_domain = domain.strip().rstrip(".").encode("idna").decode("ascii").lower()
	except UnicodeError:
		raise ComposeError(f"invalid {what}: the domain cannot be IDNA-encoded")
	labels = ascii_domain.split(".")
	if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or len(ascii_domain) > 253:
		raise ComposeError(f"invalid {what}: {domain!r} is not a mail domain")
	return ascii_domain


def normalize_email(value: str) -> str:
	"""The address as it goes into RCPT TO and headers: ASCII local part, IDNA domain."""
	email = (value or "").strip()
	if not email:
		raise ComposeError(f"invalid address {value!r}: the address is empty")
	if _CONTROL.search(email) or _SPACES.search(email):
		raise ComposeError(f"invalid address {value!r}: it contains spaces or line breaks")
	local, at, domain = email.rpartition("@")
	if not at or not local or not domain:
		raise ComposeError(f"invalid address {value!r}: it needs a name, '@' and a domain")
	if not local.isascii():
		raise ComposeError(
			f"invalid address {value!r}: a non-ASCII name before '@' needs SMTPUTF8, which is not supported"
		)
	if "@" in local or "=?" in local or len(local) > 64 or not _LOCAL_PART.match(local):
		raise ComposeError(f"invalid address {value!r}: the part before '@' is not allowed")
	return f"{local}@{idna_domain(domain, f'address {value!r}')}"


def header_address(address: Address) -> HeaderAddress:
	"""A To/From address: validated addr-spec and a one-line display name (RFC 2047 on output)."""
	local, _, domain = normalize_email(address.email).rpartition("@")
	return HeaderAddress(display_name=header_phrase(address.name, NAME_MAX), username=local, domain=domain)

"""Header decoding that survives what real mailers send.

Works on the raw header strings of the compat32 parser (8-bit bytes kept as surrogates), so
that nothing is decoded twice and no charset guess of the email package gets in the way.
"""

import binascii
import re
from email.utils import getaddresses

from usedesk_email.mail.charsets import codec_for, decode_bytes, has_8bit, surrogates_to_bytes
from usedesk_email.mail.message import Address

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\r\n\t]+")
# A mailbox we store and show: no quoted local part, no domain literal, nothing that is markup
# or address syntax; non-ASCII letters (internationalised addresses) are fine.
_MAILBOX = re.compile(r"^[^\s\"<>()\[\]\\,;:@&`]{1,64}@[^\s\"'<>()\[\]\\,;:@&`/?#%=+!$*{}|^~]{1,253}$")
# What a header writes as one word, and an address in angle brackets: an address is only ever
# taken as written, never assembled from the words of a display name.
_WORD = re.compile(r"[^\s<>\"(),;:]+")
_BRACKETED = re.compile(r"<\s*([^\s<>\"(),;:@]+@[^\s<>\"(),;:]+)\s*>")
_PLACEHOLDER = "usedeskencodedword"
MAX_ID_LENGTH = 995  # what Frappe's Communication keeps; a longer "id" is junk, not a reference
_PLACEHOLDER_RE = re.compile(_PLACEHOLDER + r"(\d+)x")


def unfold(value: str) -> str:
	return _FOLD.sub("", value)


def one_line(text: str) -> str:
	"""A header text safe to show or reuse: no CR/LF (header injection), no control chars."""
	return _CONTROL.sub("", _LINE_BREAKS.sub(" ", text)).strip()


def decode_text(value: str, defects: list[str], where: str, fallback: str | None = None) -> str:
	"""Decode every RFC 2047 encoded-word of a header, and any raw 8-bit text around them.

	Adjacent encoded-words of one charset are joined as bytes before decoding, because
	mailers split a multibyte character across two words.
	"""
	value = unfold(value)
	if "=?" not in value:
		return _decode_raw(value, defects, where, fallback)
	out: list[str] = []
	pending, pending_charset, last_was_word, pos = bytearray(), "", False, 0

	def flush() -> None:
		if pending:
			out.append(decode_bytes(bytes(pending), pending_charset, defects, where, fallback))
			pending.clear()

	for match in _ENCODED_WORD.finditer(value):
		between, pos = value[pos : match.start()], match.end()
		charset = match.group(1).split("*", 1)[0]  # drop an RFC 2231 language suffix
		data = _decode_word(match.group(2), match.group(3), defects, where)
		if data is None:
			flush()
			out.append(_decode_raw(between + match.group(0), defects, where, fallback))
			last_was_word = False
			continue
		# whitespace between two encoded-words is not part of the text (RFC 2047 6.2)
		adjacent = last_was_word and (not between or between.isspace())
		if adjacent and codec_for(charset) == codec_for(pending_charset):
			pending += data  # in place: a subject of many words stays linear
			continue
		flush()
		if not adjacent:
			out.append(_decode_raw(between, defects, where, fallback))
		pending += data
		pending_charset, last_was_word = charset, True
	flush()
	out.append(_decode_raw(value[pos:], defects, where, fallback))
	return "".join(out)


def _decode_word(encoding: str, text: str, defects: list[str], where: str) -> bytes | None:
	data = surrogates_to_bytes(text)
	if encoding in "qQ":
		return _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data.replace(b"_", b" "))
	data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
	data += b"=" * (-len(data) % 4)
	try:
		return binascii.a2b_base64(data)
	except binascii.Error:
		defects.append(f"broken base64 encoded-word in {where}")
		return None


def _decode_raw(value: str, defects: list[str], where: str, fallback: str | None) -> str:
	if not has_8bit(value):
		return value.replace("\x00", "")
	defects.append(f"raw 8-bit bytes in {where}")
	return decode_bytes(surrogates_to_bytes(value), "utf-8", defects, where, fallback)


def decode_addresses(
	values: list[str], defects: list[str], where: str, fallback: str | None = None
) -> list[Address]:
	"""Every mailbox of address headers, display names decoded; groups and junk skipped.

	Encoded-words are swapped for plain atoms before the address syntax is parsed: decoded
	too early, a name like "=?utf-8?Q?x=3A_victim@example.com?=" would turn into a group or
	an address and let a sender pose as someone else.
	"""
	words: list[str] = []

	def hide(match: re.Match) -> str:
		words.append(match.group(0))
		return f"{_PLACEHOLDER}{len(words) - 1}x"

	def restore(text: str) -> str:
		return _PLACEHOLDER_RE.sub(lambda m: words[int(m.group(1))], text) if words else text

	found: list[Address] = []
	seen: set[str] = set()
	pairs: list[tuple[str, str]] = []
	for value in values:
		hidden = _ENCODED_WORD.sub(hide, unfold(value))
		parsed = getaddresses([hidden])
		tokens = _WORD.findall(hidden)
		written = set(tokens)
		addrs = [addr for _name, addr in parsed if "@" in addr]
		if any(addr not in written for addr in addrs) or ("@" in hidden and not addrs):
			# the parser glued words into an address ("Big Bug bb@bug.com" -> "BigBugbb@bug.com")
			# or gave up: keep only what is written as an address, in brackets first
			defects.append(f"address syntax repaired in {where}")
			bare = [token for token in tokens if "@" in token]
			parsed = [("", addr) for addr in dict.fromkeys([*_BRACKETED.findall(hidden), *bare])]
		pairs.extend(parsed)
	for name, addr in pairs:
		email = one_line(_decode_raw(restore(addr), defects, where, fallback)).lower()
		if not _MAILBOX.match(email) or email.startswith(".") or ".@" in email or email.endswith("."):
			if email:
				defects.append(f"not a usable address in {where}: {email[:60]!r}")
			continue
		if email in seen:
			continue
		seen.add(email)
		found.append(
			Address(email=email, name=one_line(decode_text(restore(name), defects, where, fallback)))
		)
	return found


def message_ids(value: str, *, bare_tokens: bool = True) -> list[str]:
	"""Every Message-ID in an id-list header, in order, without brackets.

	A linear scan instead of a regex: tolerates ids without brackets, commas, comments,
	folded lines and garbage between ids, and cannot be made to backtrack.
	"""
	ids: dict[str, None] = {}
	i, n = 0, len(value)
	while i < n:
		ch = value[i]
		if ch == "<":
			end = value.find(">", i + 1)
			if end < 0:  # unterminated: up to the next blank
				rest = value[i + 1 :].split(None, 1)
				token, i = (rest[0] if rest else ""), n
			else:
				token, i = "".join(value[i + 1 : end].split()), end + 1
			if token and "<" not in token:
				ids.setdefault(token, None)
		elif ch == "(":
			end = value.find(")", i + 1)
			i = n if end < 0 else end + 1
		elif ch.isspace() or ch == ",":
			i += 1
		else:
			j = i
			while j < n and not value[j].isspace() and value[j] not in ",<(":
				j += 1
			token = value[i:j].strip("\"'")
			if bare_tokens and "@" in token.strip("@"):
				ids.setdefault(token, None)
			i = j
	return [mid for mid in ids if "\x00" not in mid and len(mid) <= MAX_ID_LENGTH]

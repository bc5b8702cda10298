"""Raw RFC 822 bytes -> ParsedMessage, for any bytes a mail server may hand over.

Uses the compat32 parser and decodes headers and payloads itself: the modern email policy
is several times slower on ordinary mail and raises on what real mailers send. Never
raises on bytes input; whatever had to be repaired is listed in `defects`, and the raw
bytes are kept unchanged.
"""

import hashlib
import re
import time
from datetime import datetime, timedelta, timezone
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import parsedate_tz

import html2text

from usedesk_email.mail.attachments import make_attachment
from usedesk_email.mail.charsets import decode_bytes
from usedesk_email.mail.classify import Headers, classify
from usedesk_email.mail.headers import decode_addresses, decode_text, message_ids, one_line, unfold
from usedesk_email.mail.message import Address, Attachment, ParsedMessage
from usedesk_email.mail.quote_split import split_reply
from usedesk_email.mail.sanitize import sanitise_html

GENERATED_ID_DOMAIN = "usedesk.generated"
EARLIEST_PLAUSIBLE = datetime(1990, 1, 1, tzinfo=timezone.utc)
FUTURE_TOLERANCE = timedelta(days=1)
_BODY_TYPES = ("text/plain", "text/html")
_MESSAGE_TYPES = ("message/rfc822", "message/global")
_META_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?([A-Za-z0-9_.:-]{1,40})", re.I)


class _TolerantMessage(Message):
	"""A compat32 message whose parameter lookup survives malformed RFC 2231 parameters."""

	def get_param(self, param: str, failobj=None, header: str = "content-type", unquote: bool = True):
		try:
			return super().get_param(param, failobj, header, unquote)
		except (TypeError, ValueError, IndexError, LookupError):
			# the stdlib sorts mixed "name*" and "name*0*" continuations and raises
			match = re.search(
				rf'(?:^|;)\s*{re.escape(param)}\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)', self.get(header, ""), re.I
			)
			return match.group(1).strip('"') if match else failobj


class _RawHeaders(Compat32):
	"""compat32, but header values come back exactly as received (8-bit bytes as surrogates)."""

	message_factory = _TolerantMessage

	def header_fetch_parse(self, name: str, value: str) -> str:
		return value

	def fold(self, name: str, value: str) -> str:
		"""Write a header back as it came (with its own folding), when an embedded message is saved."""
		return f"{name}: {value}{self.linesep}"

	def fold_binary(self, name: str, value: str) -> bytes:
		return self.fold(name, str(value)).encode("utf-8", "surrogateescape")


_POLICY = _RawHeaders(linesep="\r\n")


# The parsing budget: every step is linear in its input (measured by
# benchmarks/hostile_inputs.py), so a message taking longer than this is not mail but an
# attack or a machine in trouble; it is kept raw (defects say why), never half parsed.
BUDGET_SECONDS = 10.0
BUDGET_SECONDS_PER_MB = 10.0


class OverBudget(Exception):
	pass


def parse_message(raw: bytes, *, now: datetime | None = None, seconds: float | None = None) -> ParsedMessage:
	"""Parse one raw message. `now` (aware) is for testing the plausibility of Date;
	`seconds` replaces the budget (BUDGET_SECONDS plus BUDGET_SECONDS_PER_MB of input)."""
	if not isinstance(raw, bytes | bytearray | memoryview):
		raise ValueError(f"a raw message must be bytes, not {type(raw).__name__}")
	raw = bytes(raw)
	if not raw.strip():
		raise ValueError("a raw message cannot be empty")
	raw_hash = hashlib.sha256(raw).hexdigest()
	if seconds is None:
		seconds = BUDGET_SECONDS + BUDGET_SECONDS_PER_MB * len(raw) / 1048576
	try:
		now = now or datetime.now(timezone.utc)
		parse = _Parse(raw, raw_hash, time.monotonic() + seconds)
		return parse.run(now if now.tzinfo else now.replace(tzinfo=timezone.utc))
	except OverBudget as exc:
		return _unparsed(raw, raw_hash, f"message over the parsing budget of {seconds:.0f} s (at {exc})")
	except Exception as exc:  # a parser bug or absurd nesting: keep the bytes and say so
		return _unparsed(raw, raw_hash, f"message could not be parsed ({type(exc).__name__})")


def _unparsed(raw: bytes, raw_hash: str, why: str) -> ParsedMessage:
	return ParsedMessage(
		message_id=f"{raw_hash}@{GENERATED_ID_DOMAIN}",
		message_id_generated=True,
		raw_hash=raw_hash,
		subject="",
		sender=None,
		defects=[f"{why}; only the raw bytes are kept"],
		raw=raw,
	)


class _Parse:
	def __init__(self, raw: bytes, raw_hash: str, deadline: float) -> None:
		self.deadline = deadline
		self.raw = raw
		self.raw_hash = raw_hash
		self.defects: list[str] = []
		self.root: Message = BytesParser(policy=_POLICY).parsebytes(raw)
		self.headers: Headers = {}
		for name, value in self.root.raw_items():
			self.headers.setdefault(name.strip().lower(), []).append(value)
		self.hint = _charset_hint(self.root)
		self.check("MIME structure")

	def check(self, step: str) -> None:
		if time.monotonic() > self.deadline:
			raise OverBudget(step)

	def run(self, now: datetime) -> ParsedMessage:
		message_id, generated = self.message_id()
		texts, htmls, attachments = self.bodies()
		self.check("bodies")
		html = "\n".join(self.checked(sanitise_html(h), "sanitising") for h in htmls)
		text = "\n".join(texts) if texts else self.checked(html_to_text(html), "html to text")
		reply = self.checked(split_reply(html, text), "quote splitting")
		lowered = html.lower()
		for attachment in attachments:
			if attachment.content_id and f"cid:{attachment.content_id.lower()}" in lowered:
				attachment.inline = True
		date, trusted = self.date(now)
		kind, bounced = classify(self.headers, self.root, text)
		self.defects.extend(f"mime: {type(d).__name__}" for p in self.root.walk() for d in p.defects)
		return ParsedMessage(
			message_id=message_id,
			message_id_generated=generated,
			raw_hash=self.raw_hash,
			subject=one_line(decode_text(self.first("subject"), self.defects, "Subject", self.hint)),
			sender=self.sender(),
			to=self.addresses("to"),
			cc=self.addresses("cc"),
			reply_to=self.addresses("reply-to"),
			delivered_to=[a.email for a in self.addresses("delivered-to", "x-original-to")],
			in_reply_to=self.ids("in-reply-to"),
			references=self.ids("references"),
			date=date,
			date_trusted=trusted,
			text=text,
			html=html,
			new_html=reply.new,
			quoted_html=reply.quoted,
			attachments=attachments,
			kind=kind,
			bounced_message_id=bounced,
			defects=list(dict.fromkeys(self.defects)),
			raw=self.raw,
		)

	def checked(self, value, step: str):
		self.check(step)
		return value

	def first(self, name: str) -> str:
		values = self.headers.get(name)
		return values[0] if values else ""

	def addresses(self, *names: str) -> list[Address]:
		values = [v for name in names for v in self.headers.get(name, ())]
		return decode_addresses(values, self.defects, "/".join(names), self.hint) if values else []

	def ids(self, name: str) -> list[str]:
		return message_ids(" ".join(_ascii(v) for v in self.headers.get(name, ())))

	def sender(self) -> Address | None:
		"""The first address of From, as mail clients take it (broken syntax is repaired there)."""
		found = self.addresses("from")
		if not found:
			self.defects.append("no usable From address")
		return found[0] if found else None

	def message_id(self) -> tuple[str, bool]:
		value = _ascii(unfold(self.first("message-id"))).strip()
		ids = message_ids(value)
		if not ids and value.strip("<> ") and len(value.split()) == 1:
			ids = [value.strip("<> ")]  # a bare token without "@" is still the sender's id
		if ids:
			return ids[0], False
		self.defects.append("no Message-ID; generated from the raw bytes")
		return f"{self.raw_hash}@{GENERATED_ID_DOMAIN}", True

	def date(self, now: datetime) -> tuple[datetime | None, bool]:
		value = _ascii(unfold(self.first("date"))).strip()
		if not value:
			self.defects.append("no Date")
			return None, False
		date = _parse_date(value)
		if date is None:
			self.defects.append("unparsable Date")
			return None, False
		if not EARLIEST_PLAUSIBLE <= date <= now + FUTURE_TOLERANCE:
			self.defects.append("implausible Date")
			return date, False
		return date, True

	def bodies(self) -> tuple[list[str], list[str], list[Attachment]]:
		"""Walk the MIME tree once (iteratively: no recursion limit on hostile nesting)."""
		texts: list[str] = []
		htmls: list[str] = []
		attachments: list[Attachment] = []
		stack: list[Message] = [self.root]
		while stack:
			part = stack.pop()
			ctype = part.get_content_type()
			if ctype in _MESSAGE_TYPES and part.is_multipart():
				attachments.append(self.forwarded(part, len(attachments) + 1))
			elif part.is_multipart() and part.get_content_maintype() != "multipart":
				# message/delivery-status and the like: header blocks, kept as a text file
				payload = b"\n".join(_to_bytes(p, self.defects) for p in part.get_payload())
				attachments.append(
					make_attachment(part, payload, len(attachments) + 1, self.defects, self.hint)
				)
			elif part.is_multipart():
				children = [p for p in part.get_payload() if isinstance(p, Message)]
				if ctype == "multipart/alternative":
					children = self.alternative(children, texts, htmls, attachments)
				stack.extend(reversed(children))
			elif (
				ctype in _BODY_TYPES or part.get_content_maintype() == "multipart"
			) and not self.is_attachment(part, bool(texts or htmls)):
				# (also a multipart without a usable boundary: read as text)
				self.body(part, texts, htmls, attachments)
			else:
				payload = part.get_payload(decode=True) or b""
				attachments.append(
					make_attachment(part, payload, len(attachments) + 1, self.defects, self.hint)
				)
		return texts, htmls, attachments

	def alternative(
		self, children: list[Message], texts: list[str], htmls: list[str], attachments: list[Attachment]
	) -> list[Message]:
		"""Take the last plain and the last HTML version; anything else is walked on."""
		chosen: dict[str, Message] = {}
		rest = []
		seen_text = bool(texts or htmls)
		for child in children:
			ctype = child.get_content_type()
			if ctype in _BODY_TYPES and not self.is_attachment(child, seen_text):
				chosen[ctype] = child
			else:
				rest.append(child)
		for child in chosen.values():
			self.body(child, texts, htmls, attachments)
		return rest

	def body(self, part: Message, texts: list[str], htmls: list[str], attachments: list[Attachment]) -> None:
		ctype = part.get_content_type()
		payload = part.get_payload(decode=True) or b""
		charset = part.get_content_charset(None)
		if charset is None and ctype == "text/html":  # some mailers only say it in a <meta>
			match = _META_CHARSET.search(payload[:4096])
			charset = match.group(1).decode("ascii") if match else None
		content = decode_bytes(payload, charset, self.defects, ctype)
		if ctype == "text/html":
			htmls.append(content)
		else:
			texts.append(content.replace("\r\n", "\n").replace("\r", "\n"))
		if _named(part):  # a named body is also kept as the file the sender may have meant
			attachments.append(make_attachment(part, payload, len(attachments) + 1, self.defects, self.hint))

	def is_attachment(self, part: Message, seen_text: bool) -> bool:
		"""Disposition "attachment", or a name on anything but the first text: mailers name body
		parts without saying "attachment", and a ticket without its text is no ticket."""
		if (part.get_content_disposition() or "").lower() == "attachment":
			return True
		return _named(part) and (seen_text or part.get_content_type() not in _BODY_TYPES)

	def forwarded(self, part: Message, index: int) -> Attachment:
		"""An attached letter is kept whole as a .eml named from its subject."""
		inner = part.get_payload(0)
		subject = one_line(decode_text(str(inner.get("subject", "")), self.defects, "attached message"))
		payload = _to_bytes(inner, self.defects)
		return make_attachment(
			part, payload, index, self.defects, self.hint, filename=f"{subject or 'message'}.eml"
		)


# html2text spends a callback and several string operations on every character reference:
# mail of nothing but "&lt;" took seconds per MB. Sanitised HTML has only these three in its
# text, so they pass through as private-use characters (none left from the mail itself).
_ENTITIES = {"&lt;": "\ue000", "&gt;": "\ue001", "&amp;": "\ue002"}
_ENTITY = re.compile("|".join(_ENTITIES))
_PRIVATE = re.compile("[\ue000-\ue002]")
# html2text escapes what Markdown would read as markup ("\--", "1\."): the text is read by people
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|])")
_BACK = str.maketrans({"\ue000": "<", "\ue001": ">", "\ue002": "&"})


def html_to_text(html: str) -> str:
	"""The text of sanitised HTML (the sanitiser's output; other HTML may lose characters)."""
	if not html:
		return ""
	html = _ENTITY.sub(lambda m: _ENTITIES[m.group(0)], _PRIVATE.sub("", html))
	converter = html2text.HTML2Text()
	converter.body_width = 0
	converter.unicode_snob = True
	converter.ignore_emphasis = True
	converter.images_to_alt = True
	return _MD_ESCAPE.sub(r"\1", converter.handle(html).strip()).translate(_BACK)


def _parse_date(value: str) -> datetime | None:
	try:
		parts = parsedate_tz(value)
		if parts is None:
			return None
		offset = timezone(timedelta(seconds=parts[9] or 0))
		return datetime(*parts[:6], tzinfo=offset).astimezone(timezone.utc)
	except (ValueError, TypeError, OverflowError, IndexError):
		return None


def _to_bytes(message: Message, defects: list[str]) -> bytes:
	"""An embedded message as bytes, as close to what was received as compat32 allows."""
	try:
		return message.as_bytes(policy=_POLICY)
	except UnicodeError:  # the stdlib's generator trips over a broken multipart inside
		defects.append("embedded message re-serialised with replacement characters")
		return message.as_string(policy=_POLICY).encode("utf-8", "surrogateescape")


def _named(part: Message) -> bool:
	return bool(part.get_param("filename", None, "content-disposition") or part.get_param("name", None))


def _ascii(value: str) -> str:
	"""Ids and dates are ASCII; stray 8-bit bytes in them are dropped, not guessed."""
	return value.encode("ascii", "ignore").decode("ascii")


def _charset_hint(root: Message) -> str | None:
	"""The charset of the first text part: the best guess for raw 8-bit headers."""
	for part in root.walk():
		if part.get_content_maintype() == "text":
			return part.get_content_charset(None)
	return None

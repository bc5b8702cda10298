"""Composing an agent's reply on a ticket into the letters that go out.

**One letter per recipient.** The client and every CC participant each get their own
letter with its own Message-ID (all are in `ComposedReply.message_ids`, so an answer to
any of them threads back). Each letter's ``To`` holds that recipient only and there is no
``Cc``: a "reply all" then goes to the channel alone and comes back into the ticket,
instead of reaching the other participants directly and splitting the conversation (and
no participant learns the others' addresses from us). Every letter carries the same
subject, body, quote, attachments, ``In-Reply-To`` and ``References``.

**BCC.** The BCC address gets one copy per reply: the client's letter, under its own
Message-ID, with the BCC address only in the envelope (never in a header). It is skipped
when it is one of the channel's own addresses or already a recipient.

**Never recipients:** the channel's own addresses (`ReplyDraft.own_addresses` and the
From address), compared case-insensitively in their IDNA form.

**Headers:** Message-ID on the site's domain; ``In-Reply-To`` the message answered;
``References`` the chain plus that message, capped like mail clients do at
`REFERENCES_MAX` ids keeping the first (the thread's root) and the newest. These id
headers are written verbatim, one id per folded line: the email package would RFC
2047-encode a long id, and an encoded id no longer threads. Ids over 250 characters or
with anything but printable ASCII are dropped. The subject comes from
`thread_keys.reply_subject` ("Re: <subject> <token>" without piling up). UTF-8 with
RFC 2047 display names (cut at 128 characters) and IDNA domains (see `addresses`);
``Date`` in UTC; ``Auto-Submitted: auto-replied`` and ``X-Auto-Response-Suppress: All``
on automatic letters only. Letters are 7-bit clean (quoted-printable or base64 bodies),
so they need neither 8BITMIME nor SMTPUTF8.

**Body:** ``multipart/alternative`` with text and HTML (``multipart/mixed`` around it
with attachments). The site's own images in the quoted history (`ReplyDraft.inline_images`)
travel as ``cid:`` parts of a ``multipart/related`` around the HTML: a site URL would
not load for the reader (private files need a login) and would show our file paths. The agent's message, then the signature exactly once (personal wins;
else the channel's common one when switched on; none when the message already ends with
it), then the quote (see `quote_build`) when "display a quote" is on and "do not quote"
is off. The agent's and the signatures' HTML are staff content and sent as written; only
the quoted inbound history is sanitised.

**Hostile values** (subjects, names, ids from inbound mail) never create a header: text
is decoded and flattened to one line (`addresses.header_text`), invalid Message-IDs are
dropped, and the finished letter is parsed back to prove it has exactly the headers set.
**Bad recipients** (see `addresses`: no SMTPUTF8, no domain without a dot...) get no
letter and are listed with the reason in `ComposedReply.refused`, so one bad participant
never blocks the letters to the others; a reply left with no recipient at all, a bad From
or BCC address, and attachments over `ReplyDraft.max_attachment_bytes` raise `ComposeError`.
"""

import dataclasses
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, make_msgid
from functools import cached_property
from typing import Any

from usedesk_email.mail.addresses import (
	header_address,
	header_phrase,
	header_text,
	idna_domain,
	normalize_email,
	without_surrogates,
)
from usedesk_email.mail.errors import ComposeError, megabytes
from usedesk_email.mail.message import Address
from usedesk_email.mail.parse import html_to_text
from usedesk_email.mail.quote_build import Quote, QuotedMessage, build_quote
from usedesk_email.mail.quote_split import text_to_html
from usedesk_email.mail.thread_keys import reply_subject

REFERENCES_MAX = 20
FILENAME_MAX = 255
MAX_ATTACHMENT_BYTES = 18 * 1024 * 1024  # 24 MB once base64-encoded: under the common 25 MB limit
# 7-bit output: RFC 2047 headers, QP/base64 bodies; CRLF line ends for SMTP. Headers set
# as source text (the id headers, see `_message`) are written as they are.
OUTGOING_POLICY = policy.SMTP.clone(cte_type="7bit", refold_source="none")
_ID_HEADERS = ("Message-ID", "In-Reply-To", "References")
_MESSAGE_ID = re.compile(r"^[\x21-\x3b\x3d\x3f-\x7e]{1,250}$")  # printable ASCII without < > and spaces
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*$")


@dataclass(frozen=True)
class OutgoingAttachment:
	filename: str
	content_type: str
	payload: bytes


@dataclass
class ReplyDraft:
	subject: str  # the ticket's subject, as stored
	token: str  # the ticket's token for the subject
	from_address: Address  # the channel's From name and address
	recipients: list[Address]  # the client first, then each CC participant
	message_id_domain: str  # the site's domain
	html: str = ""  # the agent's message; either or both
	text: str = ""
	personal_signature: str = ""  # HTML, the agent's own
	common_signature: str = ""  # HTML, the channel's
	use_common_signature: bool = False
	display_quote: bool = False
	do_not_quote: bool = False
	bcc: str = ""
	own_addresses: list[str] = field(default_factory=list)  # main, additional, internal, from
	attachments: list[OutgoingAttachment] = field(default_factory=list)
	max_attachment_bytes: int = MAX_ATTACHMENT_BYTES  # all attachments together
	history: list[QuotedMessage] = field(default_factory=list)  # earlier messages, any order
	# the site's files the history shows as images, by URL as written in its HTML ("/private/files/a.png")
	inline_images: dict[str, OutgoingAttachment] = field(default_factory=dict)
	in_reply_to: str = ""  # the Message-ID answered, without angle brackets
	references: list[str] = field(default_factory=list)  # the chain, oldest first
	auto_submitted: bool = False
	date: datetime | None = None  # when composed; now when None
	subject_prefix: str = "Re:"  # "Fwd:" when the letter forwards a conversation
	notice: str = ""  # plain text under the agent's message, e.g. what a forward left out
	language: str = "en"  # of the quote's attribution (quote_build.LANGUAGES)
	zone: str = "UTC"  # the time zone the attribution's time is written in


@dataclass
class Letter:
	recipient: str  # envelope recipient (ASCII)
	sender: str  # envelope sender (ASCII)
	message_id: str  # without angle brackets
	message: EmailMessage | None  # None for a letter rebuilt from its stored bytes
	bcc: bool = False

	@cached_property
	def raw(self) -> bytes:
		return self.message.as_bytes(policy=OUTGOING_POLICY)

	@classmethod
	def from_raw(
		cls, recipient: str, sender: str, message_id: str, raw: bytes, bcc: bool = False
	) -> "Letter":
		"""A letter composed earlier, resent byte for byte (a retry must not change the mail)."""
		letter = cls(recipient, sender, message_id, None, bcc)
		letter.__dict__["raw"] = raw
		return letter


@dataclass
class ComposedReply:
	letters: list[Letter]  # the client's first, the BCC copy last
	subject: str
	text: str  # the body as sent, for the ticket's timeline
	html: str
	quote_clipped: bool
	refused: list[tuple[str, str]] = field(default_factory=list)  # (address, why) that got no letter

	@property
	def message_ids(self) -> list[str]:
		return [letter.message_id for letter in self.letters]


def compose_reply(draft: ReplyDraft) -> ComposedReply:
	"""The letters of a reply, ready for `smtp_sender.send`; `ComposeError` on bad input."""
	draft = _scrubbed(draft)
	sender = normalize_email(draft.from_address.email)
	own = {_key(a) for a in [*draft.own_addresses, sender]}
	recipients, refused = _recipients(draft.recipients, own)
	domain = idna_domain(draft.message_id_domain, f"Message-ID domain {draft.message_id_domain!r}")
	cids = {url: make_msgid(domain=domain)[1:-1] for url in draft.inline_images}
	text, body_html, clipped = _bodies(draft, cids)
	attachments = _attachments(draft.attachments, draft.max_attachment_bytes)
	inline = [  # what a clipped quote left out is not sent
		(cids[url], item) for url, item in draft.inline_images.items() if f'"cid:{cids[url]}"' in body_html
	]
	thread = _thread_headers(draft)
	subject = header_text(
		reply_subject(header_text(draft.subject), header_text(draft.token), header_text(draft.subject_prefix))
	)
	date = draft.date or datetime.now(timezone.utc)
	date = date.replace(tzinfo=timezone.utc) if date.tzinfo is None else date
	headers = {
		"From": header_address(draft.from_address),
		"Subject": subject,
		"Date": format_datetime(date.astimezone(timezone.utc)),
		**thread,
	}

	def letter(to: Address, envelope_to: str, bcc: bool = False) -> Letter:
		message_id = make_msgid(domain=domain)[1:-1]
		message = _message({**headers, "To": header_address(to), "Message-ID": [message_id]})
		message.set_content(text, charset="utf-8")
		message.add_alternative(body_html, subtype="html", charset="utf-8")
		for cid, item in inline:  # a multipart/related around the HTML
			message.get_body(("html",)).add_related(
				item.payload,
				*_mime_type(item.content_type),
				cid=f"<{cid}>",
				filename=_filename(item.filename),
				disposition="inline",
			)
		for item, maintype, subtype in attachments:
			message.add_attachment(item.payload, maintype, subtype, filename=item.filename)
		for part in list(message.walk())[1:]:
			del part["MIME-Version"]  # the email package repeats it in parts; it belongs on top only
		result = Letter(envelope_to, sender, message_id, message, bcc)
		_check_headers(result.raw, [*headers, "To", "Message-ID"])
		return result

	letters = [letter(to, email) for to, email in recipients]
	bcc = normalize_email(draft.bcc) if draft.bcc.strip() else ""
	if bcc and _key(bcc) not in own | {_key(email) for _, email in recipients}:
		letters.append(letter(recipients[0][0], bcc, bcc=True))
	return ComposedReply(letters, subject, text, body_html, clipped, refused)


def _scrubbed(value: Any) -> Any:
	"""The draft without lone surrogates, which would fail the letter far from their source."""
	if isinstance(value, str):
		return without_surrogates(value)
	if isinstance(value, list):
		return [_scrubbed(item) for item in value]
	if dataclasses.is_dataclass(value) and not isinstance(value, type):
		fields = {f.name: _scrubbed(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
		return dataclasses.replace(value, **fields)
	return value


def _key(email: str) -> str:
	try:
		return normalize_email(email).lower()
	except ComposeError:
		return (email or "").strip().lower()


def _recipients(
	addresses: Iterable[Address], own: set[str]
) -> tuple[list[tuple[Address, str]], list[tuple[str, str]]]:
	"""(header address, envelope address) per distinct recipient, own addresses left out; and
	the addresses refused, with why."""
	seen: set[str] = set()
	result, refused = [], []
	for address in addresses:
		try:
			email = normalize_email(address.email)
		except ComposeError as exc:
			refused.append((address.email, str(exc)))
			continue
		if email.lower() not in own and email.lower() not in seen:
			seen.add(email.lower())
			result.append((address, email))
	if not result:
		reasons = "; ".join(why for _, why in refused)
		raise ComposeError(
			"the reply has no recipient besides the channel's own addresses"
			+ (f" ({reasons})" if reasons else "")
		)
	return result, refused


_MARKUP = re.compile(r"<[A-Za-z/!][^>]*>")


def signature_of(draft: ReplyDraft) -> tuple[str, str]:
	"""(text, HTML) of the signature a letter ends with: the personal one, else the channel's
	when switched on; ("", "") for none. A plain-text signature keeps its lines."""
	signature = draft.personal_signature.strip() or (
		draft.common_signature.strip() if draft.use_common_signature else ""
	)
	if signature and not _MARKUP.search(signature):
		return signature, text_to_html(signature)
	return (html_to_text(signature) if signature else ""), signature


def quote_of(draft: ReplyDraft, cids: dict[str, str] | None = None) -> Quote | None:
	"""The quoted history under the message (its site images as `cids`, by URL), or None when
	the channel does not quote or nothing came before."""
	if draft.display_quote and not draft.do_not_quote and draft.history:
		return build_quote(draft.history, draft.language, draft.zone, cids)
	return None


def _bodies(draft: ReplyDraft, cids: dict[str, str]) -> tuple[str, str, bool]:
	"""Text and HTML: message, signature once, quote (its site images as `cids`, by URL);
	and whether the quote was clipped."""
	agent_html = draft.html.strip() or text_to_html(draft.text.strip())
	agent_text = draft.text.strip() or html_to_text(draft.html)
	signature_text, signature = signature_of(draft)
	if signature and _ends_with(agent_text, agent_html, signature_text, signature):
		signature = signature_text = ""
	texts, htmls = [agent_text], [f'<div class="usedesk-reply">{agent_html}</div>']
	if draft.notice.strip():
		texts.append(draft.notice.strip())
		htmls.append(f'<p class="usedesk-notice"><i>{text_to_html(draft.notice.strip())}</i></p>')
	if signature:
		texts.append(signature_text)
		htmls.append(f'<div class="usedesk-signature">{signature}</div>')
	quote = quote_of(draft, cids)
	if quote:
		texts.append(quote.text)
		htmls.append(quote.html)
	body = "\n<br>\n".join(htmls)
	document = f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{body}</body></html>'
	return "\n\n".join(texts) + "\n", document, bool(quote and quote.clipped)


def _ends_with(text: str, body_html: str, signature_text: str, signature_html: str) -> bool:
	"""Whether the agent already signed: compared as text, or as HTML for image-only signatures."""

	def flat(value: str) -> str:
		return " ".join(html.unescape(value).split()).casefold()

	if flat(signature_text):
		return flat(text).endswith(flat(signature_text))
	return flat(body_html).endswith(flat(signature_html))


def _attachments(
	attachments: Iterable[OutgoingAttachment], limit: int
) -> list[tuple[OutgoingAttachment, str, str]]:
	result, total = [], 0
	for item in attachments:
		name = _filename(item.filename)
		total += len(item.payload)
		if total > limit:
			raise ComposeError(
				f"attachment {name!r} ({megabytes(len(item.payload))}) takes the reply over the limit "
				f"of {megabytes(limit)} for all attachments"
			)
		maintype, subtype = _mime_type(item.content_type)
		result.append((OutgoingAttachment(name, f"{maintype}/{subtype}", item.payload), maintype, subtype))
	return result


def _mime_type(value: str) -> tuple[str, str]:
	"""(maintype, subtype); application/octet-stream for anything that is not a MIME type."""
	value = (value or "").strip().lower()
	return tuple(value.split("/")) if _CONTENT_TYPE.match(value) else ("application", "octet-stream")


def _filename(value: str) -> str:
	"""One line, no path separators, at most `FILENAME_MAX` characters keeping the extension."""
	name = re.sub(r"[/\\]", "_", header_phrase(value, len(value))) or "attachment"
	if len(name) <= FILENAME_MAX:
		return name
	stem, dot, extension = name.rpartition(".")
	if dot and stem and len(extension) <= 16:
		return f"{stem[: FILENAME_MAX - len(extension) - 1]}.{extension}"
	return name[:FILENAME_MAX]


def _thread_headers(draft: ReplyDraft) -> dict[str, object]:
	ids = [_clean_id(i) for i in [*draft.references, draft.in_reply_to]]
	chain = list(dict.fromkeys(i for i in ids if i))
	if len(chain) > REFERENCES_MAX:
		chain = [chain[0], *chain[-(REFERENCES_MAX - 1) :]]
	headers: dict[str, object] = {}
	parent = _clean_id(draft.in_reply_to)
	if parent:
		headers["In-Reply-To"] = [parent]
	if chain:
		headers["References"] = chain
	if draft.auto_submitted:
		headers["Auto-Submitted"] = "auto-replied"
		headers["X-Auto-Response-Suppress"] = "All"
	return headers


def _clean_id(value: str) -> str:
	"""A Message-ID without brackets, or "" when it could smuggle anything into a header."""
	value = (value or "").strip().removeprefix("<").removesuffix(">")
	return value if _MESSAGE_ID.match(value) and "=?" not in value else ""


def _message(headers: dict[str, object]) -> EmailMessage:
	message = EmailMessage(policy=OUTGOING_POLICY)
	for name, value in headers.items():
		if name in _ID_HEADERS:
			# Folded between ids by hand: the email package would RFC 2047-encode an id that
			# does not fit a 78-character line, and an encoded id no longer threads.
			message.set_raw(name, "\n ".join(f"<{i}>" for i in value))
		else:
			message[name] = value
	return message


def _check_headers(raw: bytes, names: list[str]) -> None:
	"""The letter, parsed back, has exactly the top-level headers we set (and MIME's own)."""
	found = [name.lower() for name in BytesHeaderParser(policy=policy.compat32).parsebytes(raw).keys()]
	expected = {name.lower() for name in names} | {
		"mime-version",
		"content-type",
		"content-transfer-encoding",
	}
	extra = [name for name in found if name not in expected]
	if extra or len(found) != len(set(found)):
		raise ComposeError(f"refusing a letter whose headers came out wrong: {found}")

"""Composing replies: letters per recipient, headers, signature, quote, hostile input."""

import html
import random
import re
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from usedesk_email.mail.compose import (
	FILENAME_MAX,
	REFERENCES_MAX,
	ComposedReply,
	OutgoingAttachment,
	QuotedMessage,
	ReplyDraft,
	compose_reply,
)
from usedesk_email.mail.errors import ComposeError, megabytes
from usedesk_email.mail.message import Address
from usedesk_email.mail.quote_build import CLIPPED_NOTE, QUOTE_MAX_BYTES, QUOTE_MAX_MESSAGES
from usedesk_email.mail.smtp_sender import Outcome, SmtpSettings, send
from usedesk_email.mail.thread_keys import ticket_token
from usedesk_email.testing.smtp_server import SmtpTestServer

DOMAIN = "helpdesk.example.com"
CLIENT = Address("client@example.com", "Client Person")
JUNE_3 = datetime(2024, 6, 3, 14, 5, tzinfo=timezone.utc)


def draft(**changes) -> ReplyDraft:
	values = dict(
		subject="Printer is on fire",
		token=ticket_token(42),
		from_address=Address("support@shop.example", "Shop Support"),
		recipients=[CLIENT, Address("boss@example.org", "Boss"), Address("colleague@example.net")],
		message_id_domain=DOMAIN,
		html="<p>We are on it.</p>",
		bcc="archive@example.net",
		own_addresses=["support@shop.example", "help@shop.example", "abc123@in.helpdesk.example.com"],
		in_reply_to="client-2@mail.example.com",
		references=["client-1@mail.example.com", "ours-1@helpdesk.example.com"],
		date=JUNE_3 + timedelta(days=1),
	)
	values.update(changes)
	return ReplyDraft(**values)


def parsed(reply: ComposedReply) -> list[EmailMessage]:
	return [BytesParser(policy=policy.default).parsebytes(letter.raw) for letter in reply.letters]


def text_of(message: EmailMessage) -> str:
	return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def html_of(message: EmailMessage) -> str:
	return message.get_body(("html",)).get_content().replace("\r\n", "\n")


def header_names(message: EmailMessage) -> set[str]:
	return {name.lower() for name in message.keys()}


TOP_HEADERS = {
	"from",
	"to",
	"subject",
	"date",
	"message-id",
	"in-reply-to",
	"references",
	"mime-version",
	"content-type",
}


# --- letters and recipients ---


def test_one_letter_per_recipient_and_a_bcc_copy():
	reply = compose_reply(draft())
	assert [(l.recipient, l.bcc) for l in reply.letters] == [
		("client@example.com", False),
		("boss@example.org", False),
		("colleague@example.net", False),
		("archive@example.net", True),
	]
	messages = parsed(reply)
	assert [m["To"] for m in messages] == [
		"Client Person <client@example.com>",
		"Boss <boss@example.org>",
		"colleague@example.net",
		"Client Person <client@example.com>",  # the BCC copy is the client's letter
	]
	assert all(m["Cc"] is None and m["Bcc"] is None for m in messages)
	assert all(header_names(m) == TOP_HEADERS for m in messages)
	assert b"archive@example.net" not in reply.letters[-1].raw
	assert all(l.sender == "support@shop.example" for l in reply.letters)


def test_every_letter_has_its_own_message_id_on_the_site_domain():
	reply = compose_reply(draft())
	ids = reply.message_ids
	assert len(set(ids)) == len(reply.letters) == 4
	assert all(i.endswith("@" + DOMAIN) for i in ids)
	assert [m["Message-ID"] for m in parsed(reply)] == [f"<{i}>" for i in ids]


def test_every_letter_carries_the_same_conversation():
	messages = parsed(
		compose_reply(draft(text="Hi", attachments=[OutgoingAttachment("a.txt", "text/plain", b"x")]))
	)
	for name in ("Subject", "Date", "From", "In-Reply-To", "References"):
		assert len({m[name] for m in messages}) == 1, name
	assert len({text_of(m) for m in messages}) == 1
	assert len({html_of(m) for m in messages}) == 1
	assert all([a.get_filename() for a in m.iter_attachments()] == ["a.txt"] for m in messages)


def test_own_addresses_and_duplicates_are_never_recipients():
	recipients = [
		CLIENT,
		Address("SUPPORT@Shop.Example", "Us"),
		Address("help@shop.example"),
		Address("abc123@in.helpdesk.example.com"),
		Address("Client@EXAMPLE.com", "Again"),
		Address("boss@example.org"),
	]
	reply = compose_reply(draft(recipients=recipients, bcc=""))
	assert [l.recipient for l in reply.letters] == ["client@example.com", "boss@example.org"]


def test_no_recipient_left_is_an_error():
	with pytest.raises(ComposeError, match="no recipient"):
		compose_reply(draft(recipients=[Address("support@shop.example")]))


@pytest.mark.parametrize("bcc", ["help@shop.example", "BOSS@example.org", " "])
def test_bcc_skipped_when_own_address_recipient_or_empty(bcc):
	reply = compose_reply(draft(bcc=bcc))
	assert [l.bcc for l in reply.letters] == [False, False, False]


# --- headers ---


def test_subject_in_reply_to_and_references():
	reply = compose_reply(draft(subject="RE: Fwd: Printer is on fire [UD#42]"))
	message = parsed(reply)[0]
	assert message["Subject"] == reply.subject == "Re: Printer is on fire [UD#42]"
	assert message["In-Reply-To"] == "<client-2@mail.example.com>"
	assert message["References"] == (
		"<client-1@mail.example.com> <ours-1@helpdesk.example.com> <client-2@mail.example.com>"
	)


def test_a_forward_is_prefixed_fwd_and_carries_the_token_of_its_new_ticket():
	composed = compose_reply(draft(subject="Re: Printer [UD#42]", token="[UD#43]", subject_prefix="Fwd:"))
	assert composed.subject == "Fwd: Printer [UD#43]"
	assert all(letter.message["Subject"] == "Fwd: Printer [UD#43]" for letter in composed.letters)


def test_long_references_keep_the_root_and_the_newest():
	chain = [f"id-{n}@example.com" for n in range(40)]
	message = parsed(compose_reply(draft(references=chain[:-1], in_reply_to=chain[-1])))[0]
	ids = re.findall(r"<([^>]+)>", message["References"])
	assert len(ids) == REFERENCES_MAX
	assert ids[0] == chain[0] and ids[1:] == chain[-(REFERENCES_MAX - 1) :]


def test_long_ids_are_written_verbatim_never_encoded():
	# Outlook-style ids are longer than a folded header line; RFC 2047-encoding one breaks threading.
	outlook = "DB9PR08MB6588F1E2A5B5B6D4E0B0A5C7C2A49ABCDEF@DB9PR08MB6588.eurprd08.prod.outlook.com"
	root = "r" * 200 + "@example.com"
	reply = compose_reply(
		draft(
			in_reply_to=outlook, references=[root], message_id_domain="support." + "d" * 60 + ".example.com"
		)
	)
	raw = reply.letters[0].raw
	assert b"=?" not in raw.split(b"\r\n\r\n", 1)[0]
	assert f"In-Reply-To: <{outlook}>\r\n".encode() in raw
	assert f"References: <{root}>\r\n <{outlook}>\r\n".encode() in raw
	assert f"Message-ID: <{reply.letters[0].message_id}>\r\n".encode() in raw
	message = parsed(reply)[0]
	assert message["In-Reply-To"] == f"<{outlook}>" and message["References"] == f"<{root}> <{outlook}>"


def test_ids_that_could_inject_headers_are_dropped():
	message = parsed(
		compose_reply(
			draft(
				in_reply_to="abc@example.com>\r\nBcc: evil@example.org",
				references=[
					"ok@example.com",
					"=?utf-8?q?x=0D=0ABcc:_evil@example.org?=",
					"sp ace@example.com",
				],
			)
		)
	)[0]
	assert message["In-Reply-To"] is None
	assert message["References"] == "<ok@example.com>"
	assert message["Bcc"] is None


def test_utf8_multipart_alternative_rfc2047_names_and_idna():
	reply = compose_reply(
		draft(
			from_address=Address("support@магазин.рф", "Служба поддержки"),
			own_addresses=[],
			recipients=[Address("client@пример.рф", "Иван Петров")],
			subject="Принтер горит",
			text="Здравствуйте!\nМы уже работаем.",
			html="",
			bcc="",
		)
	)
	letter = reply.letters[0]
	assert letter.raw.isascii()  # 7-bit clean: no 8BITMIME or SMTPUTF8 needed
	assert letter.recipient == "client@xn--e1afmkfd.xn--p1ai"
	assert letter.sender == "support@" + "магазин.рф".encode("idna").decode()
	assert b"=?utf-8?" in letter.raw
	message = parsed(reply)[0]
	assert message.get_content_type() == "multipart/alternative"
	assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
	assert all(p.get_content_charset() == "utf-8" for p in message.iter_parts())
	assert message["From"].addresses[0].display_name == "Служба поддержки"
	assert message["To"].addresses[0].display_name == "Иван Петров"
	assert "Принтер горит" in message["Subject"]
	assert "Здравствуйте!\nМы уже работаем." in text_of(message)
	assert "Здравствуйте!<br>\nМы уже работаем." in html_of(message)


def test_date_and_auto_submitted():
	message = parsed(compose_reply(draft()))[0]
	assert message["Date"].datetime == JUNE_3 + timedelta(days=1)
	assert message["Auto-Submitted"] is None and message["X-Auto-Response-Suppress"] is None
	auto = parsed(compose_reply(draft(auto_submitted=True)))[0]
	assert auto["Auto-Submitted"] == "auto-replied"
	assert auto["X-Auto-Response-Suppress"] == "All"


# --- hostile input ---


@pytest.mark.parametrize(
	"subject",
	[
		"Help\r\nBcc: evil@example.org",
		"Help\nX-Evil: 1",
		"=?utf-8?q?Help=0D=0ABcc:_evil@example.org?=",
		"=?utf-8?b?SGVscA0KQmNjOiBldmlsQGV4YW1wbGUub3Jn?=",
		"x=?utf-8?q?=0AX-Evil:_1?=",
		# an encoded word that decodes to another encoded word holding CR LF
		"=?utf-8?q?=3D=3Futf-8=3Fq=3FHelp=3D0D=3D0ABcc:_evil@example.org=3F=3D?=",
	],
)
def test_crlf_in_the_subject_never_makes_a_header(subject):
	reply = compose_reply(draft(subject=subject))
	for message in parsed(reply):
		assert header_names(message) == TOP_HEADERS
		assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
	assert b"\r\nBcc:" not in reply.letters[0].raw and b"\r\nX-Evil" not in reply.letters[0].raw


@pytest.mark.parametrize(
	"name",
	[
		"Eve\r\nBcc: evil@example.org",
		"=?utf-8?q?Eve=0D=0AX-Evil:_1?=",
		'"=?utf-8?b?RXZlDQpCY2M6IGV2aWxAZXhhbXBsZS5vcmc=?="',
	],
)
def test_crlf_in_display_names_never_makes_a_header(name):
	reply = compose_reply(
		draft(
			from_address=Address("support@shop.example", name),
			recipients=[Address("client@example.com", name)],
		)
	)
	for message in parsed(reply):
		assert header_names(message) == TOP_HEADERS
		assert message["To"].addresses[0].addr_spec == "client@example.com"
		assert message["From"].addresses[0].addr_spec == "support@shop.example"
		assert "\n" not in message["To"].addresses[0].display_name


@pytest.mark.parametrize(
	"address, reason",
	[
		("", "empty"),
		("   ", "empty"),
		("client.example.com", "needs a name, '@' and a domain"),
		("client@", "needs a name, '@' and a domain"),
		("@example.com", "needs a name, '@' and a domain"),
		("cli ent@example.com", "spaces or line breaks"),
		("client@example.com\r\nBcc: evil@example.org", "spaces or line breaks"),
		("client@example.com\nX-Evil: 1", "spaces or line breaks"),
		("a@b@example.com", "part before '@' is not allowed"),
		("<client@example.com>", "part before '@' is not allowed"),
		("client.@example.com", "part before '@' is not allowed"),
		("=?utf-8?q?x?=@example.com", "part before '@' is not allowed"),
		("client@localhost", "is not a mail domain"),
		("client@-bad-.com", "is not a mail domain"),
		("client@exa_mple.com", "is not a mail domain"),
		("иван@example.com", "SMTPUTF8"),
	],
)
def test_invalid_addresses_are_refused_by_name(address, reason):
	for bad in (
		{"recipients": [Address(address, "Someone")]},  # no one left to write to
		{"from_address": Address(address, "Us")},
		{"bcc": address} if address.strip() else {"recipients": [Address(address)]},
	):
		with pytest.raises(ComposeError, match=re.escape(reason)) as caught:
			compose_reply(draft(**bad))
		assert repr(address) in str(caught.value)
	# beside a good recipient, a bad one gets no letter and is named, and the others get theirs
	reply = compose_reply(draft(recipients=[CLIENT, Address(address, "Someone"), Address("cc@example.org")]))
	assert [letter.recipient for letter in reply.letters if not letter.bcc] == [
		"client@example.com",
		"cc@example.org",
	]
	((refused, why),) = reply.refused
	assert refused == address and reason in why


def test_invalid_message_id_domain_is_refused():
	with pytest.raises(ComposeError, match="invalid Message-ID domain 'bad domain'"):
		compose_reply(draft(message_id_domain="bad domain"))


def test_no_line_exceeds_the_smtp_limit():
	reply = compose_reply(
		draft(
			subject="A" * 3000,
			from_address=Address("support@shop.example", "N" * 2000),
			recipients=[Address("client@example.com", "Ж" * 1500)],
			html="<p>" + "L" * 5000 + "</p>",
			text="L" * 5000 + "\n" + "Щ" * 3000,
			references=[f"{'r' * 200}-{n}@example.com" for n in range(30)],
			attachments=[OutgoingAttachment("f" * 1000 + ".txt", "text/plain", b"x")],
		)
	)
	raw = reply.letters[0].raw
	assert max(len(line) for line in raw.split(b"\r\n")) <= 998
	message = parsed(reply)[0]
	assert "A" * 3000 in message["Subject"]
	assert "L" * 5000 + "\n" + "Щ" * 3000 in text_of(message)
	(attachment,) = message.iter_attachments()
	assert attachment.get_filename() == "f" * (FILENAME_MAX - 4) + ".txt"
	assert len(message["References"].split()) == REFERENCES_MAX


# --- attachments ---


def test_attachments_are_attached_intact():
	payload = bytes(range(256)) * 100
	reply = compose_reply(
		draft(
			attachments=[
				OutgoingAttachment("отчёт.pdf", "application/pdf", payload),
				OutgoingAttachment("../../etc/passwd\r\nX-Evil: 1", "not a type", b"data"),
			]
		)
	)
	message = parsed(reply)[0]
	assert message.get_content_type() == "multipart/mixed"
	report, odd = list(message.iter_attachments())
	assert report.get_filename() == "отчёт.pdf" and report.get_content_type() == "application/pdf"
	assert report.get_content() == payload
	assert odd.get_filename() == ".._.._etc_passwd X-Evil: 1"
	assert odd.get_content_type() == "application/octet-stream"
	assert header_names(message) == TOP_HEADERS


def test_attachments_over_the_limit_are_refused():
	items = [OutgoingAttachment("a.bin", "application/octet-stream", b"x" * 600)] * 2
	assert len(compose_reply(draft(attachments=items, max_attachment_bytes=1200)).letters) == 4
	with pytest.raises(ComposeError, match=r"'b\.bin' \(1 KB\) takes the reply over the limit of 1 KB for"):
		compose_reply(
			draft(
				attachments=[*items[:1], OutgoingAttachment("b.bin", "application/octet-stream", b"x" * 601)],
				max_attachment_bytes=1200,
			)
		)


def test_sizes_in_messages_are_in_kb_or_mb():
	assert [megabytes(n) for n in (10, 5000, 12 * 1024 * 1024 + 400_000)] == ["1 KB", "5 KB", "12.4 MB"]


# --- body and signature ---

PERSONAL = "<p>Anna Agent<br>Support team</p>"
COMMON = "<p>Shop Ltd, 1 Main Street</p>"


def bodies(**changes) -> tuple[str, str]:
	message = parsed(compose_reply(draft(**changes)))[0]
	return text_of(message), html_of(message)


def test_text_only_and_html_only_messages_get_both_parts():
	text, body = bodies(html="", text="Line one\n<b>not a tag</b>")
	assert "Line one\n<b>not a tag</b>" in text
	assert "Line one<br>\n&lt;b&gt;not a tag&lt;/b&gt;" in body
	text, body = bodies(html="<p>Hello <b>there</b></p><ul><li>one</li></ul>")
	assert "Hello there" in text and "* one" in text
	assert "<p>Hello <b>there</b></p>" in body


@pytest.mark.parametrize(
	"changes, expected",
	[
		(
			{"personal_signature": PERSONAL, "common_signature": COMMON, "use_common_signature": True},
			"Anna Agent",
		),
		({"personal_signature": " ", "common_signature": COMMON, "use_common_signature": True}, "Shop Ltd"),
		({"personal_signature": "", "common_signature": COMMON, "use_common_signature": False}, None),
	],
)
def test_signature_choice(changes, expected):
	text, body = bodies(**changes)
	for name in ("Anna Agent", "Shop Ltd"):
		count = 1 if name == expected else 0
		assert text.count(name) == count and body.count(name) == count, name


def test_signature_not_added_when_the_message_already_ends_with_it():
	text, body = bodies(
		html="<p>We are on it.</p><p>Anna Agent<br>Support team</p>", personal_signature=PERSONAL
	)
	assert text.count("Anna Agent") == 1 and body.count("Anna Agent") == 1
	text, body = bodies(html="", text="Thanks!\n\nAnna Agent\nSupport team", personal_signature=PERSONAL)
	assert text.count("Anna Agent") == 1


# --- quote ---


def history(count: int = 2, html: str = "") -> list[QuotedMessage]:
	return [
		QuotedMessage(
			sender=CLIENT if n % 2 == 0 else Address("support@shop.example", "Shop Support"),
			date=JUNE_3 - timedelta(hours=count - 1 - n),
			text=f"Message number {n}\n\nsecond paragraph {n}",
			html=html
			or f"<p>Message number {n}</p><p onclick='steal()'>second paragraph {n}</p><script>alert({n})</script>",
		)
		for n in range(count)
	]


def test_quote_newest_first_sanitised_below_the_signature():
	text, body = bodies(display_quote=True, history=history(), personal_signature=PERSONAL)
	newest = "On Mon, 3 Jun 2024 at 14:05, Shop Support <support@shop.example> wrote:"
	older = "On Mon, 3 Jun 2024 at 13:05, Client Person <client@example.com> wrote:"
	assert text.index("We are on it.") < text.index("Anna Agent") < text.index(newest) < text.index(older)
	assert f"{newest}\n> Message number 1\n>\n> second paragraph 1" in text
	assert body.index("Anna Agent") < body.index(newest.replace("<", "&lt;").replace(">", "&gt;"))
	assert body.count('<blockquote type="cite"') == 2
	assert "script" not in body and "alert" not in body and "onclick" not in body and "steal" not in body
	assert CLIPPED_NOTE not in text


@pytest.mark.parametrize("changes", [{"display_quote": True, "do_not_quote": True}, {"display_quote": False}])
def test_no_quote_when_switched_off(changes):
	text, body = bodies(history=history(), **changes)
	assert "wrote:" not in text and "Message number" not in text
	assert "blockquote" not in body and "Message number" not in body


def test_quote_keeps_the_newest_messages():
	reply = compose_reply(draft(display_quote=True, history=history(QUOTE_MAX_MESSAGES + 3)))
	text, body = text_of(parsed(reply)[0]), html_of(parsed(reply)[0])
	assert reply.quote_clipped
	assert body.count("<blockquote") == QUOTE_MAX_MESSAGES
	assert "Message number 12" in text and "Message number 3" in text and "Message number 2" not in text
	assert CLIPPED_NOTE in text and CLIPPED_NOTE in body


def test_quote_clipped_by_size():
	big = "<p>" + "y" * (QUOTE_MAX_BYTES // 3) + "</p>"
	reply = compose_reply(draft(display_quote=True, history=history(5, html=big)))
	body = html_of(parsed(reply)[0])
	assert reply.quote_clipped and body.count("<blockquote") == 2
	assert CLIPPED_NOTE in body


def test_huge_newest_message_is_quoted_cut():
	huge = QuotedMessage(
		CLIENT, JUNE_3, text="z" * (QUOTE_MAX_BYTES * 2), html="<p>" + "z" * (QUOTE_MAX_BYTES * 2)
	)
	reply = compose_reply(draft(display_quote=True, history=[huge]))
	text, body = text_of(parsed(reply)[0]), html_of(parsed(reply)[0])
	assert reply.quote_clipped and "[...]" in text and CLIPPED_NOTE in body
	assert QUOTE_MAX_BYTES // 2 <= text.count("z") < QUOTE_MAX_BYTES


def test_site_images_in_the_quote_travel_as_related_parts_remote_ones_keep_their_url():
	png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
	quoted = QuotedMessage(
		CLIENT,
		JUNE_3,
		html='<p>Photo:</p><img src="/private/files/kettle.png"><img src="/files/other.png">'
		'<img data-remote-src="https://cdn.example.com/logo.png"><img src="/api/method/logout">',
	)
	reply = compose_reply(
		draft(
			display_quote=True,
			history=[quoted],
			inline_images={"/private/files/kettle.png": OutgoingAttachment("kettle.png", "image/png", png)},
			attachments=[OutgoingAttachment("invoice.pdf", "application/pdf", b"%PDF-1.4")],
		)
	)
	letter = parsed(reply)[0]
	related = next(part for part in letter.walk() if part.get_content_type() == "multipart/related")
	html_part, image = related.get_payload()
	body = html_part.get_content()
	assert image.get_content_type() == "image/png" and image.get_content() == png
	assert image.get_content_disposition() == "inline"
	assert f'src="cid:{image["Content-ID"].strip("<>")}"' in body
	assert 'src="https://cdn.example.com/logo.png"' in body
	assert "/files/" not in body and "logout" not in body
	assert letter.get_content_type() == "multipart/mixed"
	assert [p.get_filename() for p in letter.iter_attachments()] == ["invoice.pdf"]


def test_inline_images_a_clipped_quote_left_out_are_not_sent():
	image = OutgoingAttachment("old.png", "image/png", b"old")
	old = QuotedMessage(CLIENT, JUNE_3 - timedelta(days=30), html='<img src="/private/files/old.png">')
	recent = [
		QuotedMessage(CLIENT, JUNE_3 - timedelta(hours=n), text=f"m{n}") for n in range(QUOTE_MAX_MESSAGES)
	]
	reply = compose_reply(
		draft(display_quote=True, history=[old, *recent], inline_images={"/private/files/old.png": image})
	)
	assert all(p.get_content_type() != "multipart/related" for p in parsed(reply)[0].walk())


# --- through a real SMTP server ---


def test_a_line_holding_a_single_dot_arrives_intact():
	with SmtpTestServer(security="none") as smtp:
		reply = compose_reply(
			draft(html="", text="Before\n.\n..\n.after\nEnd", display_quote=True, history=history(1))
		)
		settings = SmtpSettings(host=smtp.host, port=smtp.port, security="none", timeout=5)
		assert {r.outcome for r in send(settings, reply.letters)} == {Outcome.SENT}
		received = [BytesParser(policy=policy.default).parsebytes(d.data) for d in smtp.deliveries]
	assert len(received) == 4
	for message in received:
		assert text_of(message).startswith("Before\n.\n..\n.after\nEnd\n")
	assert [d.data for d in smtp.deliveries] == [l.raw for l in reply.letters]


# --- robustness ---

JUNK = [
	*"ab =?_:;<>\"'\\@.\r\n\t\x00\x0b\u2028\udc80Жß€😀",
	"=?utf-8?q?",
	"=?utf-8?b?",
	"?=",
	"=0D=0A",
	"DQo=",
	"Bcc: ",
]


@pytest.mark.parametrize("seed", range(4))
def test_hostile_text_anywhere_gives_a_letter_or_a_compose_error(seed):
	"""Random mixes of control characters, encoded-word pieces, surrogates and header names
	in every text of a draft: never an extra header, never an exception other than ComposeError."""
	rng = random.Random(seed)

	def junk(most: int = 12) -> str:
		return "".join(rng.choice(JUNK) for _ in range(rng.randint(0, most)))

	for _ in range(150):
		hostile = draft(
			subject=junk(30),
			token=junk(4),
			from_address=Address("support@shop.example", junk()),
			recipients=[Address(rng.choice(["client@example.com", junk() + "@example.com", junk()]), junk())],
			text=junk(40),
			html=rng.choice(["", junk(40)]),
			personal_signature=junk(),
			display_quote=True,
			history=[QuotedMessage(Address("client@example.com", junk()), JUNE_3, junk(), junk())],
			attachments=[OutgoingAttachment(junk(), junk(), b"data")],
			in_reply_to=junk(),
			references=[junk(), "ok@example.com"],
		)
		try:
			reply = compose_reply(hostile)
		except ComposeError:
			continue
		for letter, message in zip(reply.letters, parsed(reply), strict=True):
			assert header_names(message) <= TOP_HEADERS
			assert max(len(line) for line in letter.raw.split(b"\r\n")) <= 998


@pytest.mark.parametrize(
	"language, zone, expected",
	[
		("en", "UTC", "On Mon, 3 Jun 2024 at 14:05, Shop Support <support@shop.example> wrote:"),
		("en", "Europe/Moscow", "On Mon, 3 Jun 2024 at 17:05, Shop Support <support@shop.example> wrote:"),
		(
			"ru",
			"Europe/Moscow",
			"пн, 3 июн. 2024 г. в 17:05, Shop Support <support@shop.example> написал(а):",
		),
		(
			"ru",
			"Asia/Vladivostok",
			"вт, 4 июн. 2024 г. в 00:05, Shop Support <support@shop.example> написал(а):",
		),
		("xx", "UTC", "On Mon, 3 Jun 2024 at 14:05, Shop Support <support@shop.example> wrote:"),
	],
)
def test_the_attribution_is_in_the_letters_language_and_the_sites_time_zone(language, zone, expected):
	text, body = bodies(display_quote=True, history=history(), language=language, zone=zone)
	assert expected in text
	assert html.escape(expected) in body


@pytest.mark.parametrize("signature", ["Anna Smith\n--\nSecond line support\n+7 900 000-00-00", "-- \nAnna"])
def test_a_plain_text_signature_keeps_its_lines_in_both_parts(signature):
	text, body = bodies(personal_signature=signature)
	assert signature in text
	assert "\\-" not in text
	assert "<br>" in body.split("usedesk-signature", 1)[1]

"""Header, charset, file-name and classification helpers of the parser, on the edge cases."""

import base64

import pytest

from usedesk_email.mail.attachments import MAX_NAME, honest_name, safe_name
from usedesk_email.mail.charsets import codec_for, decode_bytes
from usedesk_email.mail.headers import decode_addresses, decode_text, message_ids
from usedesk_email.mail.message import Address, Kind
from usedesk_email.mail.parse import parse_message
from usedesk_email.mail.sanitize import sanitise_html


@pytest.mark.parametrize(
	"label, codec",
	[
		("utf8", "utf-8"),
		("UTF-8", "utf-8"),
		('"utf-8"', "utf-8"),
		("win-1251", "cp1251"),
		("cp-1251", "cp1251"),
		("windows1251", "cp1251"),
		("x-cp1251", "cp1251"),
		("KOI8R", "koi8-r"),
		("iso_8859-5:1988", "iso8859-5"),
		("iso-8859-1", "cp1252"),
		("us-ascii", "utf-8"),
		("gb2312", "gb18030"),
		("x-unknown-foo", None),
		("unknown-8bit", None),
		("", None),
		(None, None),
		# labels Python knows but that are no charsets, or would reinterpret the text
		("rot13", None),
		("zlib", None),
		("base64", None),
		("unicode_escape", None),
		("raw-unicode-escape", None),
		("idna", None),
	],
)
def test_codec_for(label, codec):
	assert codec_for(label) == codec


def test_decode_bytes_falls_back_and_reports():
	defects: list[str] = []
	assert decode_bytes("привет".encode(), "x-unknown-foo", defects, "body") == "привет"
	assert defects == ["unknown charset 'x-unknown-foo' in body"]
	defects.clear()
	assert decode_bytes("привет".encode("cp1251"), "utf-8", defects, "body", fallback="cp1251") == "привет"
	assert defects == ["body labelled utf-8 was decoded as cp1251"]
	defects.clear()
	assert decode_bytes(b"a\xffb\x00c", "utf-8", defects, "body") == "a\ufffdbc"
	assert defects == ["undecodable bytes replaced in body", "NUL bytes removed from body"]


def _b(text: bytes) -> str:
	return base64.b64encode(text).decode()


def test_decode_text_joins_words_split_mid_character():
	data = "Ёжик".encode()
	value = f"=?utf-8?B?{_b(data[:1])}?= =?UTF-8?B?{_b(data[1:5])}?=\r\n =?utf-8?q?{''.join(f'={c:02X}' for c in data[5:])}?="
	assert decode_text(value, [], "Subject") == "Ёжик"


def test_decode_text_keeps_spaces_between_words_and_text():
	assert decode_text("a =?utf-8?q?b?= c =?utf-8?q?d?=  =?utf-8?q?e?=", [], "s") == "a b c de"
	assert decode_text("=?utf-8?q?a_b?=", [], "s") == "a b"


def test_decode_text_mixed_charsets_and_language_suffix():
	value = "=?koi8-r?B?8NLJ18XU?= =?ISO-8859-1*fr?Q?caf=E9?="
	assert decode_text(value, [], "s") == "Приветcafé"


def test_decode_text_tolerates_broken_words():
	assert decode_text("=?utf-8?B?0J?=", [], "s") == "\ufffd"  # truncated base64
	assert decode_text("=?utf-8?Q?unterminated", [], "s") == "=?utf-8?Q?unterminated"
	defects: list[str] = []
	assert decode_text("=?bogus-cs?Q?ok?=", defects, "s") == "ok"
	assert defects == ["unknown charset 'bogus-cs' in s"]


def test_message_ids_scanner():
	assert message_ids("<a@b> <c@d>") == ["a@b", "c@d"]
	assert message_ids("<a@b>,<c@d>,  <a@b>") == ["a@b", "c@d"]
	assert message_ids("a@b c@d") == ["a@b", "c@d"]
	assert message_ids("<a@b\r\n c> (comment <x@y>) junk <d@e") == ["a@bc", "d@e"]
	assert message_ids('"Your message of Monday" <m@x>') == ["m@x"]
	assert message_ids("") == [] and message_ids("<> < >") == []
	assert message_ids("no ids at all") == []


def test_message_ids_scanner_is_linear_on_hostile_input():
	ids = message_ids("<" * 50_000 + "a@b>" + " x@y" * 50_000)
	assert ids[-1] == "x@y"


def test_addresses_groups_junk_and_duplicates():
	found = decode_addresses(
		[
			"undisclosed-recipients:;",
			'"Doe, John" <John.Doe@Example.COM>, john.doe@example.com',
			"Team: a@x.example, b@x.example;",
			"not an address",
		],
		defects := [],
		"to",
	)
	assert found == [
		Address("john.doe@example.com", "Doe, John"),
		Address("a@x.example"),
		Address("b@x.example"),
	]
	assert any(d.startswith("not a usable address in to:") for d in defects)


@pytest.mark.parametrize(
	"value",
	[
		'"<img src=x onerror=alert(1)>"@evil.example',
		'"<script>alert(1)</script>"@evil.example',
		'"a\\"onmouseover=alert(1)"@evil.example',
		'<"<svg/onload=alert(1)>"@evil.example>',
		"=?utf-8?Q?=22=3Cimg_src=3Dx_onerror=3Dalert(1)=3E=22@evil.example?=",
		'"john doe"@example.com',
		"user@[127.0.0.1]",
		"user@evil.example/<script>",
		"a&b@evil.example",
		"user@evil.example?x=<b>",
		"a`b@evil.example",
		".dot@evil.example",
		"dot.@evil.example",
		"x" * 65 + "@evil.example",
		"user@" + "d" * 254,
	],
)
def test_addresses_with_markup_or_odd_syntax_are_not_used(value):
	found = decode_addresses([value], defects := [], "from")
	assert found == [], found
	assert defects


@pytest.mark.parametrize(
	"value, email",
	[
		("иван@почта.рф", "иван@почта.рф"),
		("boss@intranet", "boss@intranet"),
		("o'brien@example.com", "o'brien@example.com"),
		("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
		("=?utf-8?B?0JjQstCw0L0=?= <ivan@example.ru>", "ivan@example.ru"),
	],
)
def test_ordinary_and_internationalised_addresses_are_kept(value, email):
	(found,) = decode_addresses([value], [], "from")
	assert found.email == email


def test_encoded_display_name_cannot_inject_an_address():
	value = "=?utf-8?Q?Boss_=3Cboss@company.example=3E,_x:?= <attacker@evil.example>"
	(found,) = decode_addresses([value], [], "from")
	assert found == Address("attacker@evil.example", "Boss <boss@company.example>, x:")


@pytest.mark.parametrize(
	"name, ctype, expected",
	[
		("report.pdf", "application/pdf", "report.pdf"),
		("../../etc/passwd", "application/octet-stream", "passwd.bin"),
		("C:\\Users\\x\\doc.docx", "application/octet-stream", "doc.docx"),
		("...hidden", "text/plain", "hidden.txt"),
		(".bashrc", "application/octet-stream", "bashrc.bin"),
		("a\x00b\r\nc\t.txt", "text/plain", "a_b_c.txt"),
		('x<>:"|?*.txt', "text/plain", "x.txt"),
		("CON.txt", "text/plain", "_CON.txt"),
		("", "image/png", "attachment-3.png"),
		("", "application/x-unknown-thing", "attachment-3.bin"),
		("noext", "application/pdf", "noext.pdf"),
		("трудное имя.xlsx", "application/octet-stream", "трудное имя.xlsx"),
		("trailing. . ", "text/plain", "trailing.txt"),
	],
)
def test_safe_name(name, ctype, expected):
	assert safe_name(name, ctype, 3) == expected


def test_safe_name_caps_length_but_keeps_the_extension():
	out = safe_name("x" * 500 + ".tar.gz", "application/gzip", 1)
	assert len(out) == MAX_NAME and out.endswith(".gz")


def _mail(*headers: str, body: str = "body", ctype: str = "text/plain") -> bytes:
	lines = ["From: sender@client.example", "Message-ID: <m@x>", *headers, f"Content-Type: {ctype}", "", body]
	return "\r\n".join(lines).encode()


@pytest.mark.parametrize(
	"headers, kind",
	[
		((), Kind.NORMAL),
		(("Auto-Submitted: auto-generated",), Kind.AUTO_REPLY),
		(("Auto-Submitted: auto-notified",), Kind.AUTO_REPLY),
		(("Auto-Submitted: No",), Kind.NORMAL),
		(("X-Autoreply: yes",), Kind.AUTO_REPLY),
		(("X-Autorespond: vacation",), Kind.AUTO_REPLY),
		(("X-Auto-Response-Suppress: OOF, AutoReply",), Kind.NORMAL),
		(("X-Auto-Response-Suppress: All", "X-MS-Exchange-Inbox-Rules-Loop: a@b"), Kind.AUTO_REPLY),
		(("X-Autogenerated: Reply",), Kind.AUTO_REPLY),
		(("Precedence: auto_reply",), Kind.AUTO_REPLY),
		(("Precedence: bulk",), Kind.BULK),
		(("Precedence: junk",), Kind.BULK),
		(("Precedence: list",), Kind.BULK),
		(("List-Id: <x.lists.example>",), Kind.BULK),
		(("List-Unsubscribe: <mailto:u@x>",), Kind.BULK),
		(("X-Failed-Recipients: a@b.example",), Kind.BOUNCE),
		(("Auto-Submitted: auto-replied", "List-Id: <x>"), Kind.AUTO_REPLY),
	],
)
def test_classification_headers(headers, kind):
	assert parse_message(_mail(*headers)).kind is kind


@pytest.mark.parametrize(
	"sender", ["MAILER-DAEMON@mx.example", "postmaster@example.org", "Mail Delivery System <Mailer-Daemon@x>"]
)
def test_bounce_senders(sender):
	raw = _mail(body="Message-ID: <lost@support.example>\r\n").replace(
		b"sender@client.example", sender.encode()
	)
	m = parse_message(raw)
	assert m.kind is Kind.BOUNCE
	assert m.bounced_message_id == "lost@support.example"  # quoted in the body text


def test_bounce_id_from_original_message_id_header():
	m = parse_message(_mail("X-Failed-Recipients: a@b", "Original-Message-ID: <orig@x>"))
	assert (m.kind, m.bounced_message_id) == (Kind.BOUNCE, "orig@x")


def test_read_receipt_is_an_auto_reply():
	raw = _mail(
		ctype='multipart/report; report-type=disposition-notification; boundary="r"',
		body="--r\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n--r--\r\n",
	)
	m = parse_message(raw)
	assert (m.kind, m.text) == (Kind.AUTO_REPLY, "Your message was read.")


def test_html_in_alternative_inside_related_with_text_elsewhere():
	raw = _mail(
		ctype='multipart/alternative; boundary="a"',
		body=(
			"--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst plain\r\n"
			"--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbetter plain\r\n"
			'--a\r\nContent-Type: multipart/related; boundary="r"\r\n\r\n'
			"--r\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--r--\r\n"
			"--a\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\n--a--\r\n"
		),
	)
	m = parse_message(raw)
	assert (m.text, m.html) == ("better plain", "<p>html</p>")
	assert [a.content_type for a in m.attachments] == ["text/calendar"]


def test_multipart_without_boundary_is_read_as_text():
	m = parse_message(_mail(ctype="multipart/mixed", body="just text"))
	assert m.text == "just text"


def test_html_text_is_sanitised_before_html2text():
	assert (
		"alert" not in parse_message(_mail(ctype="text/html", body="<p>hi</p><script>alert(1)</script>")).text
	)
	assert sanitise_html("<p>hi</p>") == "<p>hi</p>"


def test_html_charset_from_meta_when_the_header_has_none():
	body = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251"></head>'
	raw = _mail(ctype="text/html", body="").replace(
		b"\r\n\r\n", b"\r\n\r\n" + body.encode() + "<p>Счёт</p>".encode("cp1251")
	)
	assert parse_message(raw).html == "<p>Счёт</p>"


def test_overlong_message_ids_are_junk():
	assert message_ids(f"<{'a' * 2000}@x.example> <ok@x.example>") == ["ok@x.example"]


@pytest.mark.parametrize(
	"name, payload, expected",
	[
		("photo.jpg", b"MZ\x90\x00 this is an exe", "photo.jpg.bin"),
		("photo.JPEG", b"", "photo.JPEG.bin"),
		("scan.png", b"%PDF-1.7", "scan.png.bin"),
		("a.gif", b"<svg onload=alert(1)>", "a.gif.bin"),
		("photo.jpg", b"\xff\xd8\xff\xe0JFIF", "photo.jpg"),
		("img.png", b"\x89PNG\r\n\x1a\nrest", "img.png"),
		("doc.pdf", b"not a pdf at all", "doc.pdf"),  # only image types are checked
	],
)
def test_a_file_named_as_an_image_that_is_none_is_plain_bytes(name, payload, expected):
	assert honest_name(name, payload) == expected

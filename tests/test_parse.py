"""parse_message against the hand-written corpus in tests/eml: each fixture yields the fields it should."""

import base64
import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from usedesk_email.mail.message import Address, Kind, ParsedMessage
from usedesk_email.mail.parse import parse_message

EML = Path(__file__).parent / "eml"
NOW = datetime(2024, 7, 1, tzinfo=timezone.utc)


def load(name: str) -> bytes:
	return (EML / name).read_bytes()


def parse(name: str) -> ParsedMessage:
	return parse_message(load(name), now=NOW)


def test_plain_ascii_fills_every_header_field():
	raw = load("plain_ascii.eml")
	m = parse_message(raw, now=NOW)
	assert m.message_id == "20240611140500.1234@client.example"
	assert not m.message_id_generated
	assert m.raw_hash == hashlib.sha256(raw).hexdigest()
	assert m.raw == raw
	assert m.subject == "Cannot log in"
	assert m.sender == Address("alice@client.example", "Alice Walker")
	assert m.to == [Address("support@example.com", "Support"), Address("bob@example.com", "Bob, Jr.")]
	assert m.cc == [Address("carol@example.org")]
	assert m.reply_to == [Address("alice.work@client.example", "Alice at work")]
	assert m.delivered_to == ["support@example.com", "help@example.com"]
	assert m.date == datetime(2024, 6, 11, 18, 5, tzinfo=timezone.utc)
	assert m.date.tzinfo is not None and m.date_trusted
	assert m.text == "Hello,\n\nI cannot log in since this morning.\n\nAlice\n"
	assert m.html == ""
	assert m.attachments == []
	assert m.kind is Kind.NORMAL
	assert m.defects == []


def test_sender_is_from_never_reply_to_or_original_from():
	raw = (
		b"From: Real Sender <real@client.example>\r\nReply-To: other@elsewhere.example\r\n"
		b"Sender: list-bounces@lists.example\r\nX-Original-From: forged@elsewhere.example\r\n"
		b"Subject: who\r\nMessage-ID: <who@x>\r\n\r\nbody\r\n"
	)
	m = parse_message(raw)
	assert m.sender == Address("real@client.example", "Real Sender")
	assert m.reply_to == [Address("other@elsewhere.example")]


def test_utf8_alternative_keeps_text_and_sanitised_html():
	m = parse("utf8_alternative.eml")
	assert m.subject == "Grüße aus München"
	assert m.sender == Address("juergen@client.example", "Jürgen Müller")
	assert m.text == "Grüße, die Rechnung € 42 ist bezahlt."
	assert (
		'<a href="https://pay.example/r/42" target="_blank" rel="noopener noreferrer">bezahlt</a>' in m.html
	)
	assert '<table border="1"><tr><td>Summe</td>' in m.html
	assert "<html" not in m.html and "<body" not in m.html


@pytest.mark.parametrize(
	"name, subject, sender_name, text",
	[
		(
			"koi8r_body.eml",
			"Акт сверки",
			"Петров Николай",
			"Здравствуйте! Пришлите, пожалуйста, акт сверки.\n",
		),
		("cp1251_body.eml", "Оплата", "Олег", "Оплата по счёту №17 прошла."),
	],
)
def test_cyrillic_charsets(name, subject, sender_name, text):
	m = parse(name)
	assert (m.subject, m.sender.name, m.text) == (subject, sender_name, text)
	assert m.defects == []


def test_cp1251_html_part_is_decoded():
	assert parse("cp1251_body.eml").html == "<p>Оплата по счёту №17 прошла.</p>"


def test_misspelt_and_unknown_charsets_never_raise():
	m = parse("charset_misspelt.eml")
	assert m.subject == "Kodirovka тест"
	lines = m.text.split("\n")
	assert lines[:4] == ["one: привет", "two: привет", "three: привет", "four: привет"]
	assert lines[4] == "five: \ufffd\ufffd broken"
	assert "unknown charset 'x-unknown-foo' in text/plain" in m.defects
	assert "undecodable bytes replaced in text/plain" in m.defects


def test_raw_8bit_utf8_headers():
	m = parse("raw_8bit_headers.eml")
	assert m.subject == "Вопрос по заказу №12 — срочно"
	assert m.sender == Address("anna@client.example", "Анна Сергеевна")
	assert m.to == [Address("support@example.com", "Поддержка")]
	assert "raw 8-bit bytes in Subject" in m.defects


def test_raw_8bit_cp1251_headers_fall_back_to_the_body_charset():
	m = parse("raw_8bit_headers_cp1251.eml")
	assert m.subject == "Счёт не пришёл"
	assert m.sender == Address("ivan@client.example", "Иван")
	assert m.text == "Пришлите счёт повторно.\n"


def test_rfc2047_words_split_mid_character_b_and_q():
	m = parse("rfc2047_split.eml")
	assert m.subject == "Привет, мир and café plain"
	assert m.sender == Address("maria@client.example", "Мария Иванова")


def test_rfc2231_and_rfc2047_file_names_and_safe_names():
	m = parse("rfc2231_names.eml")
	assert m.text == "See the files."
	names = [(a.filename, a.safe_name, a.content_type) for a in m.attachments]
	assert names[0] == ("Счёт № 17 от июня.pdf", "Счёт № 17 от июня.pdf", "application/pdf")
	assert names[1][:2] == ("Отчёт.xlsx", "Отчёт.xlsx")
	assert names[2] == ("résumé.txt", "résumé.txt", "text/plain")
	assert names[3][:2] == ("../../etc/passwd", "passwd.bin")
	assert names[4][:2] == ("..\\..\\windows\\.hidden.exe", "hidden.exe")
	long_name = names[5][1]
	assert len(long_name) <= 120 and long_name.endswith(".docx") and long_name.startswith("very long name")
	assert names[6] == ("", "attachment-7.png", "image/png")
	assert m.attachments[0].payload.startswith(b"%PDF-1.4")
	assert m.attachments[0].size == len(m.attachments[0].payload)
	assert m.attachments[2].payload == b"resume"  # the CRLF before a boundary belongs to it
	assert not any(a.inline for a in m.attachments)


def test_missing_message_id_is_a_hash_of_the_raw_bytes():
	raw = load("no_message_id.eml")
	m = parse_message(raw, now=NOW)
	assert m.message_id == f"{hashlib.sha256(raw).hexdigest()}@usedesk.generated"
	assert m.message_id_generated
	assert parse_message(raw, now=NOW).message_id == m.message_id  # stable
	assert parse_message(raw + b"\n", now=NOW).message_id != m.message_id


def test_empty_or_bracket_only_message_id_is_generated():
	for header in (b"Message-ID:\r\n", b"Message-ID: <>\r\n", b"Message-ID:   \r\n"):
		m = parse_message(b"From: a@b.example\r\n" + header + b"\r\nbody\r\n")
		assert m.message_id_generated and m.message_id.endswith("@usedesk.generated")


def test_message_id_without_brackets_or_at_sign_is_kept():
	assert parse_message(b"Message-ID: 12345.abc@host\r\n\r\nx").message_id == "12345.abc@host"
	assert parse_message(b"Message-ID: <12345.abc>\r\n\r\nx").message_id == "12345.abc"
	assert parse_message(b"Message-ID: 12345.abc\r\n\r\nx").message_id == "12345.abc"


@pytest.mark.parametrize(
	"name, expected, defect",
	[
		("no_date.eml", None, "no Date"),
		("date_garbage.eml", None, "unparsable Date"),
		("date_1970.eml", datetime(1970, 1, 1, tzinfo=timezone.utc), "implausible Date"),
		("date_2099.eml", datetime(2099, 12, 31, 20, 59, 59, tzinfo=timezone.utc), "implausible Date"),
	],
)
def test_untrusted_dates(name, expected, defect):
	m = parse(name)
	assert m.date == expected
	assert not m.date_trusted
	assert defect in m.defects


def test_date_plausibility_is_relative_to_now():
	raw = b"From: a@b.example\r\nDate: Mon, 1 Jul 2024 20:00:00 +0000\r\n\r\nx"
	assert parse_message(raw, now=NOW).date_trusted  # 20 hours ahead: clock skew
	later = parse_message(raw.replace(b"1 Jul", b"3 Jul"), now=NOW)
	assert not later.date_trusted and later.date == datetime(2024, 7, 3, 20, tzinfo=timezone.utc)


def test_naive_now_is_taken_as_utc():
	raw = b"Date: Mon, 1 Jul 2024 20:00:00 +0000\r\n\r\nx"
	assert parse_message(raw, now=datetime(2024, 7, 1)).date_trusted


def test_date_without_zone_and_with_two_digit_year_is_utc():
	m = parse_message(b"Date: 5 Jun 24 10:00:00\r\n\r\nx", now=NOW)
	assert m.date == datetime(2024, 6, 5, 10, tzinfo=timezone.utc) and m.date_trusted


def test_two_ids_in_in_reply_to():
	m = parse("in_reply_to_two.eml")
	assert m.in_reply_to == ["first-parent@support.example.com", "second-parent@support.example.com"]
	assert m.references == ["root@support.example.com", "first-parent@support.example.com"]
	assert m.thread_ids == [
		"first-parent@support.example.com",
		"second-parent@support.example.com",
		"root@support.example.com",
	]


def test_long_folded_references_with_garbage():
	m = parse("references_long.eml")
	assert m.in_reply_to == ["chain-8@support.example.com"]
	assert m.references == [
		"chain-1@client.example",
		"chain-2@support.example.com",
		"chain-3@client.example",
		"chain-4@support.example.com",
		"chain-5@client.example",
		"chain-6@support.example.com",
		"chain-7@client.example",
		"chain-8@support.example.com",
	]


def test_nested_mixed_related_alternative():
	m = parse("nested_multipart.eml")
	assert m.text == "Plain version of the nested letter."
	assert m.html == '<div>HTML version with a logo <img src="cid:logo@client.example" alt="logo"></div>'
	logo, report = m.attachments
	assert (logo.filename, logo.content_id, logo.inline, logo.content_type) == (
		"logo.png",
		"logo@client.example",
		True,
		"image/png",
	)
	assert logo.payload.startswith(b"\x89PNG")
	assert (report.filename, report.inline, report.content_id) == ("report.pdf", False, "")


def test_attached_message_becomes_an_eml_named_from_its_subject():
	m = parse("attached_message.eml")
	assert m.text == "Forwarding the letter below as an attachment."
	assert "must not leak" not in m.text
	(eml,) = m.attachments
	assert eml.filename == "Original letter — invoice.eml"
	assert eml.safe_name == "Original letter — invoice.eml"
	assert eml.content_type == "message/rfc822"
	inner = parse_message(eml.payload)
	assert inner.message_id == "original-1@elsewhere.example"
	assert inner.text.startswith("The original text must not leak")


def test_inline_cid_images():
	m = parse("inline_cid.eml")
	first, second, unused = m.attachments
	assert (first.filename, first.content_id, first.inline) == (
		"image001.png",
		"image001.png@01DAC2B1.5E4F3A20",
		True,
	)
	assert (second.content_id, second.inline, second.safe_name) == ("second", True, "attachment-2.png")
	assert (unused.content_id, unused.inline) == ("unused@client.example", False)
	assert 'src="cid:image001.png@01DAC2B1.5E4F3A20"' in m.html
	assert m.text == "Look at this:"


def test_nul_bytes_in_headers_and_bodies():
	m = parse("nul_bytes.eml")
	assert m.subject == "Null bytes here"
	assert m.sender == Address("nul@client.example", "Nul Sender")
	assert m.text == "Text with NUL bytes."
	assert "\x00" not in m.html and "script" not in m.html
	assert "NUL bytes removed from text/plain" in m.defects
	assert b"\x00" in m.raw


def test_twenty_megabyte_attachment(tmp_path):
	data = os.urandom(20 * 1024 * 1024)
	path = tmp_path / "big.eml"
	with path.open("wb") as out:
		out.write(
			b"From: big@client.example\r\nTo: support@example.com\r\nSubject: Big file\r\n"
			b"Message-ID: <big-1@client.example>\r\nMIME-Version: 1.0\r\n"
			b'Content-Type: multipart/mixed; boundary="big"\r\n\r\n--big\r\n'
			b"Content-Type: text/plain\r\n\r\nA big file.\r\n--big\r\n"
			b'Content-Type: application/zip\r\nContent-Disposition: attachment; filename="dump.zip"\r\n'
			b"Content-Transfer-Encoding: base64\r\n\r\n"
		)
		out.write(base64.encodebytes(data).replace(b"\n", b"\r\n"))
		out.write(b"--big--\r\n")
	m = parse_message(path.read_bytes())
	assert m.text == "A big file."
	(attachment,) = m.attachments
	assert attachment.size == 20 * 1024 * 1024
	assert attachment.payload == data
	assert attachment.safe_name == "dump.zip"


@pytest.mark.parametrize(
	"name", ["auto_submitted.eml", "x_autoreply.eml", "precedence_auto_reply.eml", "outlook_oof.eml"]
)
def test_auto_replies(name):
	m = parse(name)
	assert m.kind is Kind.AUTO_REPLY
	assert m.bounced_message_id == ""


def test_outlook_out_of_office_keeps_its_thread_ids():
	m = parse("outlook_oof.eml")
	assert m.subject == "Automatic reply: [#T-1050] Your order"
	assert m.in_reply_to == ["ticket-1050.1718880000@support.example.com"]


def test_auto_submitted_no_is_a_person():
	assert parse("auto_generated_no.eml").kind is Kind.NORMAL


def test_dsn_bounce_names_the_bounced_message():
	m = parse("dsn_bounce.eml")
	assert m.kind is Kind.BOUNCE
	assert m.bounced_message_id == "ticket-1051.1718963997@support.example.com"
	assert m.text.startswith("This is the mail system at host mx.example.com.")
	assert "Reporting-MTA" not in m.text
	status, headers = m.attachments
	assert (status.content_type, status.safe_name) == ("message/delivery-status", "attachment-1.txt")
	assert b"Status: 5.1.1" in status.payload
	assert headers.content_type == "text/rfc822-headers"


def test_mailer_daemon_bounce_with_attached_message():
	m = parse("bounce_gmail.eml")
	assert m.kind is Kind.BOUNCE
	assert m.bounced_message_id == "ticket-1052.1718967540@support.example.com"
	assert m.attachments[0].filename == "[#T-1052] Reply.eml"


def test_bulk_list_mail():
	m = parse("bulk_list.eml")
	assert m.kind is Kind.BULK
	assert m.text == "# Summer sale\n\nEverything -50%."


def test_xss_in_html_is_removed():
	m = parse("xss_html.eml")
	html = m.html.lower()
	for bad in (
		"<script",
		"alert(",
		"onerror",
		"onload",
		"onclick",
		"javascript",
		"vbscript",
		"data:text/html",
		"<iframe",
		"<svg",
		"<object",
		"<embed",
		"<form",
		"<input",
		"<meta",
		"<base",
		"<style",
		"expression",
		"<math",
		"evil.example/",
	):
		assert bad not in html, bad
	assert "<p>Dear agent, please see the invoice.</p>" in m.html
	assert (
		'<a href="https://safe.example/path?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">safe link</a>'
		in m.html
	)
	assert '<div style="color:red">styled</div>' in m.html
	assert "<table><tr><td>cell</td></tr></table>" in m.html
	assert '<img src="cid:logo@evil.example" alt="logo">' in m.html
	assert "<p>&lt;script&gt;shown as text&lt;/script&gt;</p>" in m.html
	assert m.text.startswith("Dear agent, please see the invoice.")


def test_xss_and_crlf_in_headers():
	m = parse("xss_headers.eml")
	assert "\r" not in m.subject and "\n" not in m.subject
	assert m.subject == "Hello <script>alert('subj')</script> Bcc: x@evil.example"
	# an encoded display name cannot turn into another address
	assert m.sender.email == "attacker@evil.example"
	assert m.sender.name == "<script>alert(1)</script> Bcc: victim@example.com"
	assert m.to == [Address("support@example.com", "<img src=x onerror=alert(1)>")]


def test_html_only_gets_a_text_from_html2text():
	m = parse("html_only.eml")
	assert "<script" not in m.html
	assert m.text.startswith("## Order status\n\nYour order #55 has shipped.")
	assert "* Item one" in m.text and "[Track it](https://track.example/55)" in m.text
	assert "alert" not in m.text


def test_empty_body():
	m = parse("empty_body.eml")
	assert (m.subject, m.text, m.html, m.attachments) == ("", "", "", [])
	assert m.message_id == "empty-1@client.example"


def test_no_from():
	m = parse("no_from.eml")
	assert m.sender is None
	assert "no usable From address" in m.defects
	assert m.text == "No From header at all.\n"


@pytest.mark.parametrize(
	"name, subject, sender, new_text",
	[
		(
			"reply_gmail.eml",
			"Re: [#T-1042] Router keeps disconnecting",
			"ivan.petrov@gmail.com",
			"Thanks, restarting",
		),
		(
			"reply_outlook_en.eml",
			"RE: [#T-1043] Printer offline",
			"john.smith@client.example",
			"We still see",
		),
		(
			"reply_outlook_ru.eml",
			"RE: [#T-1044] Не приходит счёт",
			"olga.smirnova@client.example",
			"Счёт так и",
		),
		("reply_apple.eml", "Re: [#T-1045] Meeting on Friday", "anna.berg@icloud.com", "Sounds good"),
		("reply_thunderbird.eml", "Re: [#T-1046] Log file", "peter@client.example", "Thank you, the log"),
		("reply_yandex.eml", "Re: [#T-1047] Заказ №5531", "maria.k@yandex.ru", "Добрый день!"),
		("reply_yandex_web.eml", "Re: [#T-1047] Заказ №5531", "maria.k@yandex.ru", "А когда будет"),
		(
			"reply_mailru.eml",
			"Re: [#T-1048] Не работает вход в личный кабинет",
			"s.ivanov@mail.ru",
			"Пароль сбросил",
		),
	],
)
def test_client_replies_parse(name, subject, sender, new_text):
	m = parse(name)
	assert (m.subject, m.sender.email, m.kind) == (subject, sender, Kind.NORMAL)
	assert m.text.startswith(new_text)
	assert m.html and m.date_trusted and m.in_reply_to
	assert m.defects == []


@pytest.mark.parametrize("bad", ["From: a@b\r\n\r\nx", None, 42, ["x"]])
def test_non_bytes_input_is_a_value_error(bad):
	with pytest.raises(ValueError, match="must be bytes"):
		parse_message(bad)


@pytest.mark.parametrize("empty", [b"", b"   ", b"\r\n\r\n\t "])
def test_empty_input_is_a_value_error(empty):
	with pytest.raises(ValueError, match="empty"):
		parse_message(empty)


def test_bytearray_and_memoryview_are_accepted():
	raw = load("plain_ascii.eml")
	assert parse_message(bytearray(raw)).raw == raw
	assert parse_message(memoryview(raw)).message_id == "20240611140500.1234@client.example"


def test_every_fixture_parses_cleanly():
	for path in sorted(EML.glob("*.eml")):
		m = parse_message(path.read_bytes(), now=NOW)
		assert m.message_id, path.name
		assert not any(d.startswith("message could not be parsed") for d in m.defects), path.name


@pytest.mark.parametrize(
	"value",
	[
		"Eve <img src=x onerror=alert(1) <eve@evil.example>",
		"Eve <<script>> <eve@evil.example>",
		'"Eve <eve@evil.example>',
		"Eve (unclosed comment <eve@evil.example>",
	],
)
def test_broken_from_syntax_around_a_real_address_is_repaired(value):
	m = parse_message(f"From: {value}\r\nTo: a@b.example\r\nSubject: x\r\n\r\nhi".encode())
	assert m.sender.email == "eve@evil.example"


def test_a_from_without_any_address_stays_without_sender():
	m = parse_message(b"From: <img src=x onerror=alert(1)>\r\nTo: a@b.example\r\nSubject: x\r\n\r\nhi")
	assert m.sender is None and "no usable From address" in m.defects

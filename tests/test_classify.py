"""Classification against the labelled set in tests/eml/classify (folder = expected Kind), and
the sender and body repairs met in the same corpora."""

import time
from pathlib import Path

import pytest

from usedesk_email.mail.charsets import decode_bytes
from usedesk_email.mail.headers import decode_addresses
from usedesk_email.mail.message import Address, Kind
from usedesk_email.mail.parse import parse_message

LABELLED = Path(__file__).parent / "eml" / "classify"
FIXTURES = sorted(LABELLED.glob("*/*.eml"))


def test_the_labelled_set_covers_every_class():
	counts = {kind: len(list((LABELLED / kind.value).glob("*.eml"))) for kind in Kind}
	assert all(n >= 8 for n in counts.values()), counts


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_labelled_letter_gets_its_class(path):
	m = parse_message(path.read_bytes())
	assert m.kind is Kind(path.parent.name)
	assert not any(d.startswith("message could not be parsed") for d in m.defects)
	if m.kind in (Kind.BOUNCE, Kind.FEEDBACK):
		assert m.bounced_message_id.startswith("ticket-"), m.bounced_message_id  # every one quotes ours
	if m.kind is Kind.NORMAL:
		assert m.sender and m.text.strip()


@pytest.mark.parametrize(
	"value, email",
	[
		("tim@a.example concierge@b.example", "tim@a.example"),
		("Big Bug bb@bug.com", "bb@bug.com"),
		("bb@bug.com Big Bug", "bb@bug.com"),
		("Big Bug bb@bug.com (Bug)", "bb@bug.com"),
		("Eve (unclosed comment <eve@evil.example>", "eve@evil.example"),
		('"Eve <eve@evil.example>', "eve@evil.example"),
	],
)
def test_an_address_is_taken_as_written_never_built_from_a_name(value, email):
	m = parse_message(f"From: {value}\r\nTo: a@b.example\r\nSubject: x\r\n\r\nhi".encode())
	assert m.sender == Address(email)
	assert "address syntax repaired in from" in m.defects


def test_repaired_address_lists_keep_every_written_address():
	found = decode_addresses(["Tim tim@a.example, c@d.example"], defects := [], "to")
	assert [a.email for a in found] == ["tim@a.example", "c@d.example"]
	assert defects == ["address syntax repaired in to"]


@pytest.mark.parametrize("sender", ["MAILER-DAEMON", "Mail Delivery Subsystem <MAILER-DAEMON>", "postmaster"])
def test_daemon_senders_without_a_domain_are_bounces(sender):
	m = parse_message(f"From: {sender}\r\nSubject: x\r\n\r\nMessage-ID: <lost@support.example>\r\n".encode())
	assert (m.kind, m.bounced_message_id, m.sender) == (Kind.BOUNCE, "lost@support.example", None)


def test_hostile_sender_headers_stay_linear():
	for value in ("a@" * 200_000, "<a@" * 100_000, "(" * 200_000 + '"' * 3, "x " * 200_000):
		start = time.monotonic()
		parse_message(f"From: {value}\r\nReturn-Path: {value}\r\nSubject: x\r\n\r\nhi".encode())
		assert time.monotonic() - start < 5, value[:10]


def test_a_named_text_part_is_the_body_when_no_text_came_before():
	m = parse_message((LABELLED / "normal" / "named_text_body.eml").read_bytes())
	assert m.text == "The export stops at 90 percent every time.\n"
	assert [a.filename for a in m.attachments] == ["message.txt"]  # the file copy stays


def test_a_named_text_part_after_the_body_stays_an_attachment():
	raw = (
		b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
		b"Content-Type: text/plain\r\n\r\nSee the log.\r\n--b\r\n"
		b'Content-Type: text/plain; name="log.txt"\r\n\r\nERROR 42\r\n--b--\r\n'
	)
	m = parse_message(raw)
	assert m.text == "See the log."
	assert [(a.filename, a.payload) for a in m.attachments] == [("log.txt", b"ERROR 42")]


@pytest.mark.parametrize(
	"data, label, text, defects",
	[
		(b"caf\xe9 \x93ok\x94 \x81\x8d\x8f\x90\x9d", "ISO-8859-1", "café “ok” \x81\x8d\x8f\x90\x9d", []),
		(b"caf\xe9", "windows-1252", "café", []),
		("café — ok".encode(), "iso-8859-1", "café — ok", ["body labelled iso-8859-1 was decoded as utf-8"]),
	],
)
def test_latin1_decodes_every_byte_unless_the_bytes_are_utf8(data, label, text, defects):
	found: list[str] = []
	assert decode_bytes(data, label, found, "body") == text
	assert found == defects

"""Finding the channel address of delivered mail, and refusing bodies that are not mail."""

import json

import pytest

from usedesk_email.mail.routing import (
	HEAD_LIMIT,
	head_of,
	looks_like_mail,
	recipient_candidates,
	split_addresses,
)

FORWARDED = (
	b"Return-Path: <client@example.org>\r\n"
	b"Delivered-To: In-ABC@Inbound.Example\r\n"
	b"X-Original-To: support@shop.example\r\n"
	b"From: Client <client@example.org>\r\n"
	b"To: Support <support@shop.example>, other@example.net\r\n"
	b"Cc: boss@example.org, support@shop.example\r\n"
	b"Subject: Help\r\n"
	b"\r\n"
	b"Body\r\n"
)


@pytest.mark.parametrize(
	"raw",
	[
		FORWARDED,
		b"From client@example.org Thu Nov 26 10:00:00 2026\nSubject: mbox line first\n\nhi\n",
		b"\r\n\r\nX-Custom: 1\r\nMessage-ID: <a@b>\r\n\r\n",
		b"Received: from a by b; Thu, 26 Nov 2026 10:00:00 +0000\n\n",
	],
)
def test_mail_is_recognised(raw):
	assert looks_like_mail(raw)


@pytest.mark.parametrize(
	"raw",
	[
		b"",
		b"\r\n\r\n",
		json.dumps({"hello": "world", "from": "x"}).encode(),
		b'{"from": "a@b"}\n',
		b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
		b"email=From%3A+a%40b&subject=x",
		b"<html><body>From: a@b</body></html>",
		b"X-Only-Custom: 1\r\nX-Another: 2\r\n\r\nbody",
		b"Just a sentence: with a colon\n",
		b"From a@b\n",  # an mbox line and nothing else
	],
)
def test_what_is_not_mail_is_recognised(raw):
	assert not looks_like_mail(raw)


def test_an_envelope_recipient_decides_alone():
	assert recipient_candidates(["Envelope@Inbound.Example", "b@x.example"], FORWARDED) == [
		"envelope@inbound.example",
		"b@x.example",
	]


def test_without_envelope_delivery_headers_come_first_then_to_and_cc():
	assert recipient_candidates([], FORWARDED) == [
		"in-abc@inbound.example",
		"support@shop.example",
		"other@example.net",
		"boss@example.org",
	]


def test_candidates_without_envelope_or_delivery_headers_use_to_and_cc():
	raw = b"From: a@example.org\r\nTo: x@example.com\r\nCc: y@example.com\r\n\r\nhi"
	assert recipient_candidates([], raw) == ["x@example.com", "y@example.com"]


def test_only_the_header_block_is_read_for_routing():
	body = b"To: hidden@inbound.example\r\n" * 100_000  # 2.7 MB of header-like body lines
	raw = b"From: a@example.org\r\nTo: x@example.com\r\n\r\n" + body
	assert recipient_candidates([], raw) == ["x@example.com"]
	assert looks_like_mail(raw)


def test_a_huge_header_block_is_read_only_up_to_the_limit():
	raw = (
		b"To: x@example.com\r\n" + b"X-Junk: " + b"a" * (HEAD_LIMIT * 4) + b"\r\nTo: late@example.com\r\n\r\n"
	)
	assert len(head_of(raw)) == HEAD_LIMIT
	assert recipient_candidates([], raw) == ["x@example.com"]


@pytest.mark.parametrize(
	("value", "expected"),
	[
		(None, []),
		("", []),
		("In-1@Inbound.Example", ["in-1@inbound.example"]),
		("a@x.example, Name <b@y.example>", ["a@x.example", "b@y.example"]),
		(
			'{"to": ["In-1@inbound.example", "c@z.example"], "from": "s@e.example"}',
			["in-1@inbound.example", "c@z.example"],
		),
		('{"to": "in-2@inbound.example"}', ["in-2@inbound.example"]),
		('{"to": [', []),
		("[1, 2]", []),
		("not an address", []),
	],
)
def test_recipient_parameters(value, expected):
	assert split_addresses(value) == expected

"""Property-style robustness: mutated and truncated corpus files never make the parser raise."""

import random
from pathlib import Path

import pytest

from usedesk_email.mail.message import ParsedMessage
from usedesk_email.mail.parse import parse_message

EML = Path(__file__).parent / "eml"
CORPUS = sorted(p.read_bytes() for p in EML.glob("*.eml"))
SEED = 20240601
CASES = 400
_NASTY = [
	b"\x00",
	b"\xff\xfe",
	b"\r",
	b"\n\n",
	b"=?",
	b"?=",
	b"=?utf-8?B?",
	b"=?x-bogus?Q?=FF=?=",
	b"<",
	b">",
	b'"',
	b"(",
	b";",
	b"--",
	b"boundary=",
	b"Content-Type: multipart/mixed; boundary=x\r\n",
	b"Content-Transfer-Encoding: base64\r\n",
	b"Content-Type: message/rfc822\r\n",
	b"charset=x-unknown",
	b"filename*0*=bad''%ZZ",
	b"<script>",
	"ё".encode(),
	"ё".encode("cp1251"),
]


def _mutate(rng: random.Random, raw: bytes) -> bytes:
	data = bytearray(raw)
	for _ in range(rng.randint(1, 6)):
		if not data:
			break
		op = rng.randrange(6)
		pos = rng.randrange(len(data))
		if op == 0:  # truncate
			del data[pos:]
		elif op == 1:  # flip bytes
			for i in range(pos, min(pos + rng.randint(1, 8), len(data))):
				data[i] = rng.randrange(256)
		elif op == 2:  # insert something that matters to a MIME parser
			data[pos:pos] = rng.choice(_NASTY)
		elif op == 3:  # delete a stretch
			del data[pos : pos + rng.randint(1, 200)]
		elif op == 4:  # duplicate a stretch
			data[pos:pos] = data[pos : pos + rng.randint(1, 300)]
		else:  # drop a whole line (a header, a boundary, a blank separator)
			start = data.rfind(b"\n", 0, pos) + 1
			end = data.find(b"\n", pos)
			del data[start : len(data) if end < 0 else end + 1]
	return bytes(data) if bytes(data).strip() else b"x"


def _cases() -> list[bytes]:
	rng = random.Random(SEED)
	return [_mutate(rng, rng.choice(CORPUS)) for _ in range(CASES)]


def test_corpus_is_large_enough():
	assert len(CORPUS) >= 40


def test_mutated_corpus_never_raises():
	cases = _cases()
	assert len(set(cases)) > CASES * 0.9  # really different inputs
	for raw in cases:
		m = parse_message(raw)
		assert isinstance(m, ParsedMessage)
		assert m.message_id
		assert m.raw == raw
		assert "\x00" not in m.subject + m.text + m.html
		assert "\r" not in m.subject and "\n" not in m.subject
		# the parser itself coped: the last-resort net did not catch anything
		assert not any(d.startswith("message could not be parsed") for d in m.defects), m.defects


@pytest.mark.parametrize(
	"raw",
	[
		b"x",
		b"\x00",
		b"\xff" * 100,
		b":",
		b"From:",
		b"From: <>\r\n\r\n",
		b"\r\n\r\nbody only",
		b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--",
		b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n',
		b"Content-Type: message/rfc822\r\n\r\n",
		b"Content-Type: text/html\r\n\r\n<",
		b"Content-Transfer-Encoding: base64\r\n\r\n!!!!",
		b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=\r\n=Z",
		b"Subject: =?utf-8?B?=?=\r\n\r\n",
		b"Date: Mon, 99 Foo 99999 99:99:99 +9999\r\n\r\n",
		b"Date: Mon, 1 Jan 0001 00:00:00 -2400\r\n\r\n",
		b"From MAILER-DAEMON Mon Jun 24 12:00:00 2024\r\nFrom: a@b.example\r\n\r\nmbox",
		b"A" * 100_000,
		b"Subject: " + b"=?utf-8?Q?a?= " * 5000 + b"\r\n\r\n",
		b"References: " + b"<" * 20_000 + b"\r\n\r\n",
	],
)
def test_degenerate_inputs(raw):
	m = parse_message(raw)
	assert m.message_id and m.raw == raw
	assert not any(d.startswith("message could not be parsed") for d in m.defects), m.defects


def test_absurd_nesting_keeps_the_raw_bytes():
	depth = 5000
	body = b"".join(
		b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1) for i in range(depth)
	)
	raw = b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n" + body
	m = parse_message(raw)
	assert m.raw == raw and m.message_id_generated
	assert m.defects == ["message could not be parsed (RecursionError); only the raw bytes are kept"]


def test_a_message_over_its_parsing_budget_is_kept_raw_and_says_why():
	raw = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: x\r\n\r\n" + b"<p>x</p>" * 1000
	m = parse_message(raw, seconds=0.0)
	assert m.sender is None and m.raw == raw
	assert m.defects and "over the parsing budget" in m.defects[0]
	assert parse_message(raw).sender is not None  # the default budget is ample


def test_the_default_budget_grows_with_the_size():
	from usedesk_email.mail.parse import BUDGET_SECONDS, BUDGET_SECONDS_PER_MB

	assert BUDGET_SECONDS >= 5 and BUDGET_SECONDS_PER_MB >= 5


def test_huge_bodies_are_shown_whole_not_split():
	from usedesk_email.mail.quote_split import SPLIT_MAX_CHARS

	quoted = "On Mon, 1 Jan 2024 at 10:00, A <a@b.example> wrote:\n> old\n"
	text = "new\n" + quoted * (SPLIT_MAX_CHARS // len(quoted) + 1)
	raw = b"From: a@b.example\r\nSubject: x\r\n\r\n" + text.encode()
	m = parse_message(raw)
	assert m.quoted_html == "" and m.new_html.startswith("new")
	small = parse_message(b"From: a@b.example\r\nSubject: x\r\n\r\nnew\n" + quoted.encode())
	assert small.quoted_html


def test_a_subject_of_many_encoded_words_is_decoded_whole():
	word = "=?utf-8?B?0J/RgNC40LLQtdGCIA==?= "  # "Привет "
	m = parse_message(f"From: a@b.example\r\nSubject: {word * 20000}\r\n\r\nhi".encode())
	assert m.subject.count("Привет") == 20000


@pytest.mark.parametrize(
	"html, text",
	[
		("<p>1 &lt; 2 &amp;&amp; 3 &gt; 2</p>", "1 < 2 && 3 > 2"),
		("<p>" + "&lt;!--" * 3 + "</p>", "<!--<!--<!--"),
		("<p>a\ue000b\ue001c</p>", "abc"),  # the mail's own private-use characters go
		("<p>&quot;q&quot; &nbsp;x</p>", '"q" \xa0x'),
	],
)
def test_html_to_text_keeps_character_references(html, text):
	from usedesk_email.mail.parse import html_to_text

	assert html_to_text(html) == text

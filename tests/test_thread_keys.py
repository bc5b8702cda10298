"""Threading keys: prefixes, tokens, and the in-memory threader's rules."""

import pytest

from usedesk_email.mail.message import Address, ParsedMessage
from usedesk_email.mail.thread_keys import (
	ThreadIndex,
	find_token,
	normalise_subject,
	reply_subject,
	strip_token,
	ticket_token,
)


@pytest.mark.parametrize(
	"subject, expected",
	[
		("Re: Hello", "hello"),
		("RE: Fwd: AW: WG: SV: VS: Antw: Doorst: Hello", "hello"),
		("Re[2]: Re(3): Re^2: Hello", "hello"),
		("Отв: Ответ: Пересл: Привет", "привет"),
		("Re : Fw：Hello", "hello"),
		("Re: Report about Re: something", "report about re: something"),
		("Regarding: the bill", "regarding: the bill"),
		("Fwd: [UD#12] Re: Hello  world [UD#12]", "hello world"),
		("", ""),
	],
)
def test_normalise_subject_strips_prefixes_only_at_the_start(subject, expected):
	assert normalise_subject(subject) == expected


def test_token_round_trip_and_no_bare_numbers():
	token = ticket_token(4711)
	assert token == "[UD#4711]"
	assert find_token(f"Re: Printer {token}") == "4711"
	assert find_token("Order #4711 and [#4711] and [4711]") is None
	assert find_token("Re: [UD#1] moved to [UD#2]") == "2"
	assert strip_token(f"Hello {token} there") == "Hello there"
	with pytest.raises(ValueError):
		ticket_token("12] injected [x")


def test_reply_subject_never_piles_up():
	token = ticket_token(42)
	once = reply_subject("Printer is on fire", token)
	assert once == "Re: Printer is on fire [UD#42]"
	assert reply_subject(once, token) == once
	assert reply_subject(f"RE: Fwd: re: Printer is on fire {token} {token}", token) == once
	assert reply_subject("", token) == "Re: [UD#42]"


def message(mid, sender="client@example.org", subject="Hi", in_reply_to=(), references=(), cc=()):
	return ParsedMessage(
		message_id=mid,
		message_id_generated=False,
		raw_hash="0" * 64,
		subject=subject,
		sender=Address(sender),
		to=[Address("help@example.com")],
		cc=[Address(a) for a in cc],
		in_reply_to=list(in_reply_to),
		references=list(references),
	)


def test_thread_index_follows_headers_then_token_from_participants_only():
	index = ThreadIndex()
	first = index.add(message("a@x", cc=["boss@example.org"]), token_of_new="1")
	assert first.reason == "new"
	assert index.add(message("b@x", in_reply_to=["a@x"])).reason == "in-reply-to"
	assert index.add(message("c@x", references=["zzz@x", "b@x"])).reason == "references"
	by_token = index.add(message("d@x", sender="boss@example.org", subject="Still? [UD#1]"))
	assert (by_token.reason, by_token.ticket_key) == ("token", first.ticket_key)
	stranger = index.add(message("e@x", sender="evil@example.net", subject="Hijack [UD#1]"))
	assert stranger.reason == "new" and stranger.ticket_key != first.ticket_key
	same_subject = index.add(message("f@x", sender="other@example.net", subject="Hi"))
	assert same_subject.reason == "new", "never threaded by subject alone"

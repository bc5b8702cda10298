"""Threading keys: prefixes, tokens, and the in-memory threader's rules."""

import pytest

from usedesk_email.mail.message import Address, ParsedMessage
from usedesk_email.mail.thread_keys import (
	ThreadDecision,
	ThreadIndex,
	find_token,
	lookup_ids,
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
		("RV: TR: RES: ENC: Ynt: VL: Odp: Rif: Hola", "hola"),
		("回复：转发: 答复: 你好", "你好"),
		("Fwd[2]: RE [3]: re^2 : Fw: Hello", "hello"),
		("  Re:Re:RE:   Hello \t  there  ", "hello there"),
		("Regarding: the bill", "regarding: the bill"),
		("Recall: meeting", "recall: meeting"),
		("Reply needed: invoice", "reply needed: invoice"),
		("Fwd the invoice please", "fwd the invoice please"),
		("Report: Re: Fwd: disk", "report: re: fwd: disk"),
		("Re", "re"),
		("Отчёт: Re: сбой", "отчёт: re: сбой"),
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
	assert reply_subject("Re: Printer is on fire [UD#7]", token, "Fwd:") == "Fwd: Printer is on fire [UD#42]"


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


def test_lookup_ids_are_the_message_thread_ids():
	msg = message("m@x", in_reply_to=["p@x"], references=["root@x", "mid@x", "p@x"])
	assert lookup_ids(msg) == ["p@x", "mid@x", "root@x"]


def test_a_reply_chain_threads_by_headers_with_the_nearest_parent():
	index = ThreadIndex(own_addresses=frozenset({"help@example.com"}))
	first = index.add(message("1@client", subject="Printer"), token_of_new="7")
	other = index.add(message("1@other", sender="other@example.org", subject="Printer"))
	assert other.reason == "new" and other.ticket_key != first.ticket_key, "same subject, another client"
	ours = message(
		"r1@help", sender="help@example.com", subject="Re: Printer [UD#7]", in_reply_to=["1@client"]
	)
	assert index.add(ours) == ThreadDecision(first.ticket_key, "in-reply-to")
	answer = message(
		"2@client",
		subject="RE: Re: Printer [UD#7]",
		in_reply_to=["r1@help"],
		references=["1@client", "r1@help"],
	)
	assert index.add(answer) == ThreadDecision(first.ticket_key, "in-reply-to")
	# In-Reply-To lost by the client; References still name a stored message.
	cut = message("3@client", subject="Printer", references=["gone@x", "2@client", "unknown@x"])
	assert index.add(cut) == ThreadDecision(first.ticket_key, "references")


def test_the_channel_address_is_never_a_participant():
	index = ThreadIndex(own_addresses=frozenset({"Help@Example.com"}))
	index.add(message("1@client", subject="Printer"), token_of_new="9")
	spoof = index.add(message("2@x", sender="help@example.com", subject="Re: Printer [UD#9]"))
	assert spoof.reason == "new", "the channel's own address in To does not make it a participant"
	assert index.add(message("3@client", subject="Printer again [UD#9]")).reason == "token"


def test_a_message_seen_twice_joins_its_first_ticket():
	index = ThreadIndex()
	first = index.add(message("same@x", subject="Invoice"), token_of_new="3")
	again = index.add(message("same@x", subject="Invoice"))
	assert (again.ticket_key, again.reason) == (first.ticket_key, "duplicate")

"""Threading keys: which stored conversation an incoming message belongs to.

Rules (SPEC §3), in order: a stored Message-ID (ours or the client's) named in In-Reply-To
or References; then the ticket token in the subject, but only from a participant of that
ticket, so a stranger cannot slip into another client's thread; otherwise a new ticket.
Never by subject alone. The Frappe layer applies the same rules with indexed queries;
`ThreadIndex` applies them in memory for the preview command.

The token is ``[UD#<ticket>]``: the prefix makes it something no client types by chance,
unlike a bare number or ``#123``.
"""

import re
from dataclasses import dataclass, field

from usedesk_email.mail.message import ParsedMessage

_TOKEN = re.compile(r"\[UD#([A-Za-z0-9-]{1,64})\]")
_PREFIX = re.compile(
	r"""^\s*(?:
		(?:re|fwd?|aw|wg|sv|vs|vl|antw|doorst|tr|rv|rif|res|enc|odp|ynt|отв|ответ|пересл|переслать|ha
		|回复|答复|转发|回覆|轉寄)
		(?:\s*[\[(]\d+[\])]|\^\d+)?   # Re[2], Re(3), Re^2
		\s*[:：]
	)""",
	re.IGNORECASE | re.VERBOSE,
)
_SPACES = re.compile(r"\s+")


def ticket_token(ticket_name: str | int) -> str:
	token = f"[UD#{ticket_name}]"
	if not _TOKEN.fullmatch(token):
		raise ValueError(f"a ticket name for a token is letters, digits and '-', not {ticket_name!r}")
	return token


def find_token(subject: str) -> str | None:
	"""The ticket named by the last token in the subject (the newest one a client kept)."""
	found = _TOKEN.findall(subject or "")
	return found[-1] if found else None


def strip_token(subject: str) -> str:
	return _SPACES.sub(" ", _TOKEN.sub(" ", subject or "")).strip()


def strip_prefixes(subject: str) -> str:
	"""Drop reply/forward prefixes at the start only: "Re: Fwd: x" -> "x", "x Re: y" stays."""
	subject = subject or ""
	while True:
		stripped = _PREFIX.sub("", subject, count=1)
		if stripped == subject:
			return subject.strip()
		subject = stripped


def normalise_subject(subject: str) -> str:
	return strip_prefixes(strip_token(subject)).casefold()


def lookup_ids(msg: ParsedMessage) -> list[str]:
	"""Stored Message-IDs that would place the message: In-Reply-To, then References newest first."""
	return msg.thread_ids


def reply_subject(subject: str, token: str, prefix: str = "Re:") -> str:
	""" "Re: <subject> <token>" however many prefixes and tokens the subject already carries."""
	base = strip_prefixes(strip_token(subject)) if subject else ""
	return " ".join(part for part in (prefix, base, token) if part)


@dataclass
class ThreadDecision:
	ticket_key: int
	reason: str  # "in-reply-to" | "references" | "token" | "duplicate" (Message-ID already placed) | "new"


@dataclass
class ThreadIndex:
	"""In-memory threading of a batch of messages, as the site would thread them.

	own_addresses: the channel's main and additional e-mails, which never become participants.
	"""

	own_addresses: frozenset[str] = frozenset()
	_by_message_id: dict[str, int] = field(default_factory=dict)
	_participants: dict[int, set[str]] = field(default_factory=dict)
	_tokens: dict[str, int] = field(default_factory=dict)

	def add(self, msg: ParsedMessage, token_of_new: str | None = None) -> ThreadDecision:
		sender = msg.sender.email.lower() if msg.sender else ""
		decision = self._decide(msg, sender)
		if decision.reason == "new":
			self._participants[decision.ticket_key] = set()
			if token_of_new:
				self._tokens[token_of_new] = decision.ticket_key
		self._by_message_id[msg.message_id] = decision.ticket_key
		own = {address.lower() for address in self.own_addresses}
		people = self._participants[decision.ticket_key]
		people.update(a.email.lower() for a in [*msg.to, *msg.cc] if a.email)
		if sender:
			people.add(sender)
		people -= own
		return decision

	def _decide(self, msg: ParsedMessage, sender: str) -> ThreadDecision:
		if msg.message_id in self._by_message_id:
			return ThreadDecision(self._by_message_id[msg.message_id], "duplicate")
		for mid in lookup_ids(msg):
			if mid in self._by_message_id:
				reason = "in-reply-to" if mid in msg.in_reply_to else "references"
				return ThreadDecision(self._by_message_id[mid], reason)
		name = find_token(msg.subject)
		key = self._tokens.get(name) if name else None
		if key is not None and sender in self._participants[key]:
			return ThreadDecision(key, "token")
		return ThreadDecision(len(self._participants) + 1, "new")

"""The records the engine hands to its callers: plain data, no behaviour worth mocking."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class Kind(str, Enum):
	"""What a message is, for deciding whether it may open a ticket or trigger a reply."""

	NORMAL = "normal"
	AUTO_REPLY = "auto-reply"
	BOUNCE = "bounce"
	FEEDBACK = "feedback"  # an abuse report (RFC 5965 ARF) about a letter sent from the desk
	BULK = "bulk"


# Sent by machines about our letters: never open a ticket, never reopen one, add no one.
AUTOMATIC = frozenset({Kind.AUTO_REPLY, Kind.BOUNCE, Kind.FEEDBACK})


@dataclass(frozen=True)
class Address:
	email: str
	name: str = ""

	def __str__(self) -> str:
		return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass
class Attachment:
	filename: str  # as the sender named it, decoded (RFC 2047 / RFC 2231)
	safe_name: str  # a name that is safe to store on disk
	content_type: str
	payload: bytes
	content_id: str = ""  # without angle brackets
	inline: bool = False

	@property
	def size(self) -> int:
		return len(self.payload)


@dataclass
class ParsedMessage:
	message_id: str  # normalised, without angle brackets
	message_id_generated: bool  # True when the mail had none and the id is a hash of the raw bytes
	raw_hash: str  # sha256 hex of the raw bytes
	subject: str
	sender: Address | None  # From; never Reply-To or X-Original-From
	to: list[Address] = field(default_factory=list)
	cc: list[Address] = field(default_factory=list)
	reply_to: list[Address] = field(default_factory=list)
	delivered_to: list[str] = field(default_factory=list)  # Delivered-To, then X-Original-To
	in_reply_to: list[str] = field(default_factory=list)
	references: list[str] = field(default_factory=list)
	date: datetime | None = None  # UTC
	date_trusted: bool = False  # False when Date was missing, unparsable or implausible
	text: str = ""
	html: str = ""  # sanitised
	# The body as HTML (the text as HTML when there is no HTML part), split into what the
	# sender wrote now and the quoted history; quoted_html is "" when none was recognised.
	new_html: str = ""
	quoted_html: str = ""
	attachments: list[Attachment] = field(default_factory=list)
	kind: Kind = Kind.NORMAL
	bounced_message_id: str = ""  # bounce or feedback report: the Message-ID of the letter it is about
	defects: list[str] = field(default_factory=list)  # what had to be repaired while decoding
	raw: bytes = b""

	@property
	def thread_ids(self) -> list[str]:
		"""Ids to look up in stored messages, nearest parent first."""
		seen: dict[str, None] = {}
		for mid in [*self.in_reply_to, *reversed(self.references)]:
			seen.setdefault(mid, None)
		return list(seen)

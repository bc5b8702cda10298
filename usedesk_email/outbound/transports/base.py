"""What every way out of the desk implements: send a reply's composed letters, say what
became of each. Recording the outcomes, backing off and the statuses of the reply and of
its ticket are `usedesk_email.outbound.delivery`'s, the same for every transport."""

from dataclasses import dataclass
from typing import Protocol

SENT = "Sent"
TEMPORARY = "Temporary failure"  # tried again later, up to delivery.RETRY_MINUTES
FAILED = "Failed"
UNCERTAIN = "Uncertain"  # may have arrived: a person decides whether to send again
HANDED_OVER = "Handed to Email Queue"


@dataclass(frozen=True)
class LetterOutcome:
	letter: str  # the letter's Email Channel Message row
	status: str  # one of the statuses above
	error: str | None = None
	email_queue: str | None = None  # the site's Email Queue row a letter was handed to


class Transport(Protocol):
	# True when a letter can leave without the database transaction knowing (a network
	# hand-over): its row is then marked Sending and committed first, so a worker that dies
	# mid-send leaves it Uncertain instead of sending it twice.
	marks_sending: bool

	def send(self, channel, comm, rows: list) -> list[LetterOutcome]:
		"""Send the letters (ledger rows with recipient, message_id, bcc and raw bytes); one
		outcome per row."""
		...

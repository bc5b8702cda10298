"""The channel's own SMTP server (External and Office 365 outgoing): one session per run."""

from usedesk_email.channel.config import ca_file, smtp_settings
from usedesk_email.channel.oauth import with_fresh_token
from usedesk_email.engine_errors import described
from usedesk_email.mail.compose import Letter
from usedesk_email.mail.errors import MailError
from usedesk_email.mail.smtp_sender import Outcome, send
from usedesk_email.outbound.transports.base import FAILED, SENT, TEMPORARY, UNCERTAIN, LetterOutcome

STATUS = {Outcome.SENT: SENT, Outcome.TEMPORARY: TEMPORARY, Outcome.PERMANENT: FAILED}


class SmtpTransport:
	marks_sending = True

	def send(self, channel, comm, rows: list) -> list[LetterOutcome]:
		letters = [
			Letter.from_raw(r.recipient, channel.from_email, r.message_id, r.raw.encode(), bool(r.bcc))
			for r in rows
		]
		try:
			with ca_file(channel) as ca:
				results = with_fresh_token(
					channel.outgoing_type, lambda refresh: send(smtp_settings(channel, ca, refresh), letters)
				)
		except MailError as exc:  # no session at all: nothing was handed over
			return [LetterOutcome(row.name, TEMPORARY, described(exc)) for row in rows]
		by_id = {row.message_id: row.name for row in rows}
		return [
			LetterOutcome(
				by_id[result.message_id],
				STATUS.get(result.outcome, UNCERTAIN),
				None if result.outcome == Outcome.SENT else result.detail,
			)
			for result in results
		]

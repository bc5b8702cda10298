"""The ways a reply's letters leave the desk, one module each, behind `base.Transport`."""

from usedesk_email.channel.kinds import INTERNAL
from usedesk_email.outbound.transports.base import Transport
from usedesk_email.outbound.transports.email_queue import EmailQueueTransport
from usedesk_email.outbound.transports.smtp import SmtpTransport


def for_channel(channel) -> Transport:
	"""The transport of the channel's Outgoing Type: Internal is the site's Email Queue; External
	and Office 365 are the channel's own SMTP server."""
	return EmailQueueTransport() if channel.outgoing_type == INTERNAL else SmtpTransport()

"""usedesk-email-preview: which tickets a mailbox's unread mail would become, read-only.

An admin points it at a mailbox to check a channel's settings before saving them; the
folder is opened read-only and fetched with BODY.PEEK[], so nothing is marked read.
``--demo`` starts the bundled test Dovecot with sample mail and previews that.
"""

import argparse
import os
import sys

from usedesk_email.mail.errors import MailError
from usedesk_email.mail.imap_session import ImapSession, ImapSettings
from usedesk_email.mail.message import Kind
from usedesk_email.mail.parse import parse_message
from usedesk_email.mail.thread_keys import ThreadIndex


def preview(settings: ImapSettings, out=None, limit: int = 200) -> int:
	"""Print the would-be tickets; returns the number of unread messages looked at."""
	out = out or sys.stdout
	index = ThreadIndex()
	with ImapSession(settings) as session:
		uidvalidity = session.select(readonly=True)
		unseen = session.unseen_uids()
		print(
			f"{settings.address} {settings.folder}: {session.exists} messages, {len(unseen)} unread "
			f"(UIDVALIDITY {uidvalidity}); read mail is never imported.",
			file=out,
		)
		for fetched in session.fetch(unseen[:limit]):
			msg = parse_message(fetched.raw)
			decision = index.add(msg)
			sender = str(msg.sender) if msg.sender else "(no sender)"
			if msg.kind in (Kind.AUTO_REPLY, Kind.BOUNCE, Kind.FEEDBACK) and decision.reason == "new":
				verdict = f"ignored ({msg.kind.value}: opens no ticket)"
			elif decision.reason == "new":
				verdict = f"new ticket T{decision.ticket_key}"
			else:
				verdict = f"joins T{decision.ticket_key} (by {decision.reason})"
				if msg.kind != Kind.NORMAL:
					verdict += f" [{msg.kind.value}]"
			extras = f", {len(msg.attachments)} attachment(s)" if msg.attachments else ""
			print(f"  UID {fetched.uid:>5}  {verdict:<36} {sender} | {msg.subject!r}{extras}", file=out)
		if len(unseen) > limit:
			print(f"  ... and {len(unseen) - limit} more unread messages", file=out)
	return min(len(unseen), limit)


def main(argv: list[str] | None = None) -> int:
	parser = argparse.ArgumentParser(prog="usedesk-email-preview", description=__doc__.splitlines()[0])
	parser.add_argument("--host")
	parser.add_argument("--port", type=int)
	parser.add_argument("--security", choices=("ssl", "starttls", "none"), default="ssl")
	parser.add_argument("--user")
	parser.add_argument(
		"--password-env",
		default="IMAP_PASSWORD",
		help="environment variable holding the password (default IMAP_PASSWORD)",
	)
	parser.add_argument("--ca-file", help="a private CA to trust; certificate checks stay on")
	parser.add_argument("--folder", default="INBOX")
	parser.add_argument("--limit", type=int, default=200, help="at most this many unread messages")
	args = parser.parse_args(argv)
	try:
		if not (args.host and args.user):
			parser.error("give --host and --user (and the password in $IMAP_PASSWORD)")
		settings = ImapSettings(
			host=args.host,
			port=args.port or (993 if args.security == "ssl" else 143),
			security=args.security,
			username=args.user,
			password=os.environ.get(args.password_env, ""),
			ca_file=args.ca_file,
			folder=args.folder,
		)
		preview(settings, limit=args.limit)
		return 0
	except MailError as error:
		print(f"error: {error}", file=sys.stderr)
		return 2


if __name__ == "__main__":
	sys.exit(main())

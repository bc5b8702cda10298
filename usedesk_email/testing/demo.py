"""The engine's main job on sample mail: a real Dovecot on 127.0.0.1 holding the bundled
messages, previewed read-only (`bash scripts/demo`)."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from usedesk_email.mail.errors import MailError
from usedesk_email.mail.imap_session import ImapSettings
from usedesk_email.mail.preview import preview
from usedesk_email.testing.dovecot import DovecotServer

SAMPLE_MAIL = Path(__file__).parent / "sample_mail"
READ_SAMPLES = ("06_already_read.eml",)


@contextmanager
def demo_mailbox() -> Iterator[ImapSettings]:
	"""A real Dovecot on 127.0.0.1 holding the sample mail; stopped afterwards."""
	with DovecotServer() as server:
		box = server.new_mailbox("demo")
		for path in sorted(SAMPLE_MAIL.glob("*.eml")):
			server.deliver(box.user, path.read_bytes(), seen=path.name in READ_SAMPLES)
		before = server.flags(box.user)
		yield ImapSettings(
			host=server.host,
			port=server.ssl_port,
			security="ssl",
			username=box.user,
			password=box.password,
			ca_file=str(server.ca_file),
		)
		if server.flags(box.user) != before:
			raise MailError("the preview changed the mailbox's flags")
		print(f"Flags of all {len(before)} messages unchanged: nothing was marked read.")


def main() -> int:
	"""A failure (the Dovecot would not start, the flags changed) ends in its traceback."""
	with demo_mailbox() as settings:
		preview(settings)
	return 0


if __name__ == "__main__":
	sys.exit(main())

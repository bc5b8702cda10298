"""How fast parse_message reads the test corpus, next to the stdlib's modern email API.

Usage: python benchmarks/parse_speed.py [--repeat N]

Parses every tests/eml/*.eml file N times, plus one generated letter with a 20 MB
attachment (made once, in memory), and prints messages/second and MB/s for
`parse_message` and for a reference: `email.message_from_bytes(raw, policy=email.policy.default)`
with the common headers read and `get_content()` called on every leaf part.
"""

import argparse
import base64
import email
import email.policy
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from usedesk_email.mail.parse import parse_message

BIG_SIZE = 20 * 1024 * 1024


def big_message() -> bytes:
	head = (
		b"From: big@client.example\r\nTo: support@example.com\r\nSubject: Big file\r\n"
		b"Date: Mon, 24 Jun 2024 12:00:00 +0000\r\nMessage-ID: <big-1@client.example>\r\nMIME-Version: 1.0\r\n"
		b'Content-Type: multipart/mixed; boundary="big"\r\n\r\n--big\r\nContent-Type: text/plain\r\n\r\n'
		b"A big file.\r\n--big\r\nContent-Type: application/zip\r\n"
		b'Content-Disposition: attachment; filename="dump.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
	)
	payload = base64.encodebytes(os.urandom(BIG_SIZE)).replace(b"\n", b"\r\n")
	return head + payload + b"--big--\r\n"


def reference(raw: bytes) -> None:
	"""What a straightforward parser on the modern email API does with one message."""
	msg = email.message_from_bytes(raw, policy=email.policy.default)
	for name in ("subject", "from", "to", "cc", "date", "message-id", "in-reply-to", "references"):
		msg.get(name)
	for part in msg.walk():
		if not part.is_multipart():
			part.get_content()


def errors_of(fn: Callable[[bytes], object], messages: list[bytes]) -> int:
	failed = 0
	for raw in messages:
		try:
			fn(raw)
		except Exception:
			failed += 1
	return failed


def measure(fn: Callable[[bytes], object], messages: list[bytes], repeat: int) -> tuple[float, float]:
	"""(messages/second, MB/second); messages the function cannot handle are timed up to the error."""
	size = sum(len(m) for m in messages) * repeat
	start = time.perf_counter()
	for _ in range(repeat):
		for raw in messages:
			try:
				fn(raw)
			except Exception:
				pass
	elapsed = time.perf_counter() - start
	return len(messages) * repeat / elapsed, size / elapsed / 1e6


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
	parser.add_argument("--repeat", type=int, default=50, help="passes over the small corpus files")
	parser.add_argument("--big-repeat", type=int, default=3, help="passes over the 20 MB letter")
	args = parser.parse_args()

	corpus = [p.read_bytes() for p in sorted((ROOT / "tests" / "eml").glob("*.eml"))]
	big = [big_message()]
	sets = [
		(f"corpus ({len(corpus)} files, {sum(map(len, corpus)) / 1024:.0f} KB)", corpus, args.repeat),
		(f"20 MB attachment ({len(big[0]) / 1e6:.1f} MB raw)", big, args.big_repeat),
	]
	print(f"Python {sys.version.split()[0]}")
	print(f"{'set':<36} {'parser':<28} {'msg/s':>10} {'MB/s':>8} {'errors':>7}")
	for label, messages, repeat in sets:
		for name, fn in (("parse_message", parse_message), ("policy.default+get_content", reference)):
			rate, mbps = measure(fn, messages, repeat)
			print(f"{label:<36} {name:<28} {rate:>10.1f} {mbps:>8.2f} {errors_of(fn, messages):>7}")
	mixed = corpus + big
	for name, fn in (("parse_message", parse_message), ("policy.default+get_content", reference)):
		rate, mbps = measure(fn, mixed, 1)
		print(f"{'all files once, 20 MB included':<36} {name:<28} {rate:>10.1f} {mbps:>8.2f}")


if __name__ == "__main__":
	main()

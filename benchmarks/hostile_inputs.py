"""Time and memory of parse_message on hostile mail, per MB of input, side by side with ordinary mail.

Usage: python benchmarks/hostile_inputs.py [--sizes 1,4] [--only NAME]

Each case runs in a fresh child process, so its peak RSS (VmHWM) is its own; the figure
reported is the growth over the child's RSS before parsing. A case whose seconds or MB per
MB of input grow with the size is not linear: compare the rows of one case.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEAD = (
	"From: Eve <eve@evil.example>\r\nTo: help@example.com\r\nSubject: {subject}\r\n"
	"Message-ID: <{mid}@evil.example>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
)


def html_mail(html: str, mid: str) -> bytes:
	return (
		HEAD.format(subject="html", mid=mid) + "Content-Type: text/html; charset=utf-8\r\n\r\n" + html
	).encode()


def text_mail(text: str, mid: str) -> bytes:
	return (
		HEAD.format(subject="text", mid=mid) + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
	).encode()


def repeat(unit: str, size: int) -> str:
	return unit * (size // len(unit.encode()))


def nested_mime(size: int) -> bytes:
	depth = size // 80
	head = HEAD.format(subject="mime", mid="mime")
	parts = [head]
	for i in range(depth):
		parts.append(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n')
	parts.append("Content-Type: text/plain\r\n\r\ndeep\r\n")
	return "".join(parts).encode()


def many_parts(size: int) -> bytes:
	part = "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
	return (
		HEAD.format(subject="parts", mid="parts")
		+ 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
		+ repeat(part, size)
		+ "--b--\r\n"
	).encode()


def many_headers(size: int) -> bytes:
	return (repeat("X-Junk: a\r\n", size) + HEAD.format(subject="hdr", mid="hdr") + "\r\nbody").encode()


def many_addresses(size: int) -> bytes:
	to = ", ".join(f"person{i}@many.example" for i in range(size // 24))
	return (
		HEAD.format(subject="many", mid="many").replace("To: help@example.com", f"To: {to}") + "\r\nhi"
	).encode()


def encoded_words(size: int) -> bytes:
	word = "=?utf-8?B?" + base64.b64encode("Привет ".encode()).decode() + "?= "
	return (HEAD.format(subject=repeat(word, size), mid="ew") + "\r\nhi").encode()


def ordinary(size: int) -> bytes:
	para = "<p>Hello, my order 12345 has not arrived. <b>Please</b> check <a href='https://shop.example/o'>it</a>.</p>\n"
	return html_mail(repeat(para, size), "ordinary")


CASES = {
	"ordinary html": ordinary,
	"ordinary text": lambda n: text_mail(
		repeat("Hello, my order has not arrived. Please check.\n", n), "text"
	),
	"nested blockquote": lambda n: html_mail(repeat("<blockquote>x\n", n), "bq"),
	"nested lists": lambda n: html_mail(repeat("<ul><li>x", n), "li"),
	"nested divs closed": lambda n: html_mail(repeat("<div>", n // 2) + repeat("</div>", n // 2), "div"),
	"unclosed + stray ends": lambda n: html_mail(repeat("<b>", n // 2) + repeat("</i>", n // 2), "stray"),
	"unterminated tags": lambda n: html_mail(repeat("<a href='x ", n), "unterm"),
	"unclosed comments": lambda n: html_mail(repeat("<!--", n), "comment"),
	"quote attributions": lambda n: text_mail(
		repeat("On Mon, 1 Jan 2024 at 10:00, A <a@b.example> wrote:\n> x\n", n), "attr"
	),
	"nested mime": nested_mime,
	"many mime parts": many_parts,
	"many headers": many_headers,
	"many addresses": many_addresses,
	"encoded words": encoded_words,
}

CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from benchmarks.hostile_inputs import CASES
from usedesk_email.mail.parse import parse_message
raw = CASES[{name!r}]({size})
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
before = rss("VmRSS:")
start = time.perf_counter()
parse_message(raw)
seconds = time.perf_counter() - start
print(json.dumps({{"bytes": len(raw), "seconds": seconds, "growth": rss("VmHWM:") - before}}))
"""


def main() -> None:
	parser = argparse.ArgumentParser()
	parser.add_argument("--sizes", default="1,4", help="input sizes in MB, comma-separated")
	parser.add_argument("--only", default="", help="run only the cases whose name contains this")
	args = parser.parse_args()
	sizes = [float(s) for s in args.sizes.split(",")]
	print(f"{'case':24} {'MB in':>6} {'seconds':>8} {'s/MB':>6} {'MB RSS':>7} {'MB/MB':>6}")
	for name in CASES:
		if args.only and args.only not in name:
			continue
		for size in sizes:
			code = CHILD.format(root=str(ROOT), name=name, size=int(size * 1024 * 1024))
			started = time.perf_counter()
			out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
			if out.returncode:
				print(
					f"{name:24} {size:6.1f} failed after {time.perf_counter() - started:.1f}s: {out.stderr[-300:]}"
				)
				continue
			r = json.loads(out.stdout)
			mb = r["bytes"] / 1048576
			print(
				f"{name:24} {mb:6.2f} {r['seconds']:8.2f} {r['seconds'] / mb:6.2f}"
				f" {r['growth'] / 1048576:7.1f} {r['growth'] / 1048576 / mb:6.1f}",
				flush=True,
			)


if __name__ == "__main__":
	os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
	main()

"""Exact-match share and mean similarity of the new text that quote splitting leaves, over tests/eml/quotes.

Usage: python benchmarks/quote_split_quality.py [--root PATH]

Each <name>.eml of tests/eml/quotes has a <name>.expected.txt: the new text a reader must see
above the collapsed history (the whole text for the neg_* letters, which must not be split).
The letter goes through parse_message; the visible text of its new part is compared with the
expected one, whitespace squashed. Prints the exact-match share, the mean difflib ratio, and
every letter that missed. --root points at another checkout, to measure its engine on this set.
"""

import argparse
import sys
from difflib import SequenceMatcher
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "eml" / "quotes"


class _Text(HTMLParser):
	"""Visible text of an HTML fragment, read with the standard parser, not the engine's."""

	def __init__(self) -> None:
		super().__init__(convert_charrefs=True)
		self.parts: list[str] = []
		self.hidden = 0

	def handle_starttag(self, tag, attrs):
		self.hidden += tag in ("head", "style", "script", "title")
		self.parts.append(" ")

	def handle_endtag(self, tag):
		self.hidden -= tag in ("head", "style", "script", "title") and self.hidden > 0
		self.parts.append(" ")

	def handle_data(self, data):
		if not self.hidden:
			self.parts.append(data)


def visible(html: str) -> str:
	reader = _Text()
	reader.feed(html)
	reader.close()
	return " ".join("".join(reader.parts).split())


def main() -> int:
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose engine is measured")
	args = parser.parse_args()
	sys.path.insert(0, str(args.root.resolve()))
	from usedesk_email.mail.parse import parse_message

	scores = []
	for path in sorted(FIXTURES.glob("*.eml")):
		expected = " ".join(path.with_suffix(".expected.txt").read_text(encoding="utf-8").split())
		got = visible(parse_message(path.read_bytes()).new_html)
		scores.append((path.stem, got == expected, SequenceMatcher(None, got, expected).ratio()))
	exact = sum(hit for _, hit, _ in scores)
	print(f"letters: {len(scores)} ({sum(name.startswith('neg_') for name, _, _ in scores)} must stay whole)")
	print(f"exact match: {exact}/{len(scores)} ({exact / len(scores):.1%})")
	print(f"mean similarity: {sum(ratio for *_, ratio in scores) / len(scores):.3f}")
	for name, hit, ratio in scores:
		if not hit:
			print(f"  {name}: {ratio:.3f}")
	return 0


if __name__ == "__main__":
	sys.exit(main())

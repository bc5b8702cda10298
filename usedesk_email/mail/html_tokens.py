"""HTML tokens with their source offsets, on the standard library's html.parser, in linear time.

html.parser of Python 3.11 rescans the rest of the input for every construct that does not
end (an unterminated tag, comment, processing instruction or marked section: quadratic time
on hostile mail, CVE-2025-6069) and raises AssertionError on `<![x`. `risky_positions` finds
exactly those `<` (and the `&#` that make it stop early) in one pass; they are neutralised
before parsing, so every input parses in linear time and nothing raises.
"""

import re
from bisect import bisect_right
from html.parser import HTMLParser
from typing import NamedTuple

# A start tag that html.parser will close exactly where this match ends: attribute values
# may not hold `<`, so no match (and no scan) runs past the next `<`.
_START_TAG = re.compile(
	r"""<([A-Za-z][^\t\n\r\f />\x00<]*+)"""
	r"""(?>(?>[\s/]*+)(?>[^\s/>"'=<][^\s/>=<]*+)(?>\s*+=\s*+(?>"[^"<]*+"|'[^'<]*+'|[^\s>"'<]*+))?)*+"""
	r"""[\s/]*+>"""
)
_CONSTRUCT = re.compile(r"<[A-Za-z/!?]|&#")
_CHARREF = re.compile(r"&#(?:[0-9]+|[xX][0-9a-fA-F]+)[^0-9a-fA-F]")
_MARKED_NAME = re.compile(r"<!\[([A-Za-z][-_.A-Za-z0-9]*)")
# The closers html.parser (_markupbase) looks for.
_COMMENT_END = re.compile(r"--\s*>")
_SECTION_END = re.compile(r"]\s*]\s*>")
_CONDITIONAL_END = re.compile(r"]\s*>")
_SECTION_NAMES = frozenset({"temp", "cdata", "ignore", "include", "rcdata"})
_CONDITIONAL_NAMES = frozenset({"if", "else", "endif"})
_RAW_TEXT = {"script": re.compile(r"</\s*script\s*>", re.I), "style": re.compile(r"</\s*style\s*>", re.I)}


class _Finder:
	"""Repeated forward searches of one pattern, each character scanned once overall."""

	def __init__(self, pattern: re.Pattern[str], text: str) -> None:
		self.pattern, self.text = pattern, text
		self.match: re.Match[str] | None = None
		self.exhausted_from = len(text) + 1

	def search(self, pos: int) -> re.Match[str] | None:
		if pos >= self.exhausted_from:
			return None
		if self.match is None or self.match.start() < pos:
			self.match = self.pattern.search(self.text, pos)
			if self.match is None:
				self.exhausted_from = pos
		return self.match


def risky_positions(html: str) -> list[int]:
	"""Offsets of every `<` and `&` that html.parser would rescan from or choke on."""
	risky: list[int] = []
	finders = {
		p: _Finder(p, html) for p in (_COMMENT_END, _SECTION_END, _CONDITIONAL_END, *_RAW_TEXT.values())
	}
	next_gt = _Finder(re.compile(">"), html)
	next_lt = _Finder(re.compile("<"), html)
	pos = 0
	while (found := _CONSTRUCT.search(html, pos)) is not None:
		i = found.start()
		resume = _construct_end(html, i, finders, next_gt, next_lt)
		if resume is None:
			risky.append(i)
			pos = i + 1
		else:
			pos = resume
	return risky


def _construct_end(
	html: str, i: int, finders: dict[re.Pattern[str], _Finder], next_gt: _Finder, next_lt: _Finder
) -> int | None:
	"""Where html.parser resumes after the construct at i, or None when it would misbehave."""
	if html.startswith("&#", i):
		return i + 2 if _CHARREF.match(html, i) else None
	if html.startswith("<!--", i):
		close = finders[_COMMENT_END].search(i + 4)
		return close.end() if close else None
	if html.startswith("<![", i):
		name = _MARKED_NAME.match(html, i)
		kind = name.group(1).lower() if name else ""
		if kind in _SECTION_NAMES:
			close = finders[_SECTION_END].search(i + 3)
		elif kind in _CONDITIONAL_NAMES:
			close = finders[_CONDITIONAL_END].search(i + 3)
		else:
			return None
		return close.end() if close else None
	if html[i + 1].isalpha():
		tag = _START_TAG.match(html, i)
		if tag is None:
			return None
		raw_text = _RAW_TEXT.get(tag.group(1).lower())
		if raw_text is None or tag.group().endswith("/>"):
			return tag.end()
		close = finders[raw_text].search(tag.end())
		return close.end() if close else len(html)
	# </x>, <!x>, <?x>: html.parser reads up to the next `>`, which must come before any `<`.
	gt = next_gt.search(i + 1)
	lt = next_lt.search(i + 1)
	if gt is None or (lt is not None and lt.start() < gt.start()):
		return None
	return gt.end()


def defuse(html: str) -> str:
	"""The HTML with its risky `<` and `&` escaped, safe to feed to html.parser."""
	out, last = [], 0
	for i in risky_positions(html):
		out += [html[last:i], "&lt;" if html[i] == "<" else "&amp;"]
		last = i + 1
	out.append(html[last:])
	return "".join(out)


class Token(NamedTuple):
	kind: str  # "start", "startend", "end", "data", "entity" (a character reference) or "other"
	tag: str  # lower case; "" for data, entity and other
	attrs: dict[str, str] | None  # of start and startend tags that have any; valueless ones map to ""
	start: int  # offset in the source
	end: int


class _Collector(HTMLParser):
	def __init__(self) -> None:
		super().__init__(convert_charrefs=False)
		self.tokens: list[Token] = []
		self.base = 0  # offset of self.rawdata in the source
		self.position = 0  # where the token being handled starts
		# The token before: built once the next one's start (its end) is known.
		self.kind, self.tag, self.attrs, self.start = "data", "", None, 0

	def updatepos(self, i: int, j: int) -> int:
		# html.parser moves past each token with this call, after its handler ran: so the
		# end of the last move is where the next token starts. Cheaper than getpos().
		self.position = self.base + j
		return j

	def _add(self, kind: str, tag: str = "", attrs: list[tuple[str, str | None]] | None = None) -> None:
		if self.position > self.start:
			self.tokens.append(Token(self.kind, self.tag, self.attrs, self.start, self.position))
		self.kind, self.tag, self.start = kind, tag, self.position
		self.attrs = {name: value or "" for name, value in attrs} if attrs else None

	def finish(self, end: int) -> list[Token]:
		self.tokens.append(Token(self.kind, self.tag, self.attrs, self.start, end))
		return self.tokens

	def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
		self._add("start", tag, attrs)

	def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
		self._add("startend", tag, attrs)

	def handle_endtag(self, tag: str) -> None:
		self._add("end", tag)

	def handle_data(self, data: str) -> None:
		self._add("data")

	def handle_entityref(self, name: str) -> None:
		self._add("entity")

	def handle_charref(self, name: str) -> None:
		self._add("entity")

	def handle_comment(self, data: str) -> None:
		self._add("other")

	handle_decl = handle_pi = unknown_decl = handle_comment


def tokenize(html: str) -> list[Token]:
	"""Tokens covering the whole source in order; a token's text is html[token.start:token.end]."""
	chars = list(html)
	for i in risky_positions(html):
		chars[i] = "\x00"  # same length: offsets stay those of the source
	collector = _Collector()
	collector.feed("".join(chars))
	collector.base = len(html) - len(collector.rawdata)  # close() parses the rest from 0
	collector.close()
	return collector.finish(len(html))


def token_at(tokens: list[Token], offset: int) -> int:
	"""Index of the token that holds the offset."""
	return max(0, bisect_right([t.start for t in tokens], offset) - 1)

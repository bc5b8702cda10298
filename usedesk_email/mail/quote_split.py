"""Split a client's reply into its new text and the quoted history, in text and in HTML.

The timeline collapses the quoted part. Both parts together always hold the whole input,
so a wrong guess hides text behind a toggle but never loses it; when in doubt (bottom
posting, answers written between quoted lines) nothing is split. Every rule looks at one
line or a bounded window of lines, so the cost stays linear whatever the input.
"""

import re
from dataclasses import dataclass
from html import escape, unescape
from itertools import accumulate

from usedesk_email.mail.html_tokens import Token, token_at, tokenize
from usedesk_email.mail.quote_markers import (
	ATTRIBUTION_CLASSES,
	HISTORY_CLASSES,
	HISTORY_ID_ENDS,
	HISTORY_IDS,
)


@dataclass(frozen=True)
class SplitReply:
	new: str
	quoted: str  # "" when the reply holds no recognisable history


# --- Line rules, shared by text and HTML -------------------------------------------------

# "On Tue, 3 Mar 2026 at 10:00, Name <a@b> wrote:" and its translations end with a verb...
_VERB_END = re.compile(
	r"(?:wrote|writes|пишет|писал\(а\)|писала?|написал\(а\)|написала?|schrieb|a\s+écrit|escribió|"
	r"ha\s+scritto|scrisse|escreveu|schreef|skrev|kirjoitti|napisał\(a\)|napisała?|yazdı|írta|έγραψε|写道)"
	r"\s*[:：]$",
	re.I,
)
# ...or with the sender's address: `03.03.2026, 10:00, "Name" <a@b>:` (Yandex, Mail.ru, Gmail in Russian).
_ADDRESS_END = re.compile(r"(?:<\s*[^<>\s]+@[^<>\s]+\s*>|\(?[^\s<>():]+@[^\s<>()]+?\)?)\s*[:：]$")
_TIME = re.compile(r"\d{1,2}:\d{2}")
_YEAR = re.compile(r"(?:19|20)\d{2}")
_ATTRIBUTION_MAX = 400  # an attribution line is short; longer lines are text

_HEADER = re.compile(
	r"[\s*_]*(?:"
	r"(?P<sender>from|от|отправитель|von|de|från|fra|van|da|od|lähettäjä)"
	r"|(?P<date>sent|date|отправлено|дата|gesendet|datum|envoyé|enviado(?:\s+el)?|fecha|skickat|sendt|verzonden|inviato|data|wysłano|lähetetty)"
	r"|(?P<to>to|кому|an|à|a|para|till|til|aan|do|vastaanottaja)"
	r"|(?P<subject>subject|тема|betreff|objet|asunto|ämne|emne|onderwerp|oggetto|temat|aihe|assunto)"
	r"|(?P<cc>cc|копия|kopie|copie|kopia)"
	r")[ \t]*[*_]*[ \t]*[:：]",
	re.I,
)
_DIGIT = re.compile(r"\d")
_HEADER_REACH = 12  # lines an Outlook header block may span
_SEPARATOR = re.compile(
	r"\s*(?:-{2,}\s*(?:original message|forwarded message|исходное сообщение|пересылаемое сообщение|"
	r"пересланное сообщение|ursprüngliche nachricht|weitergeleitete nachricht|message d'origine|"
	r"message transféré|mensaje original|mensaje reenviado|messaggio originale|messaggio inoltrato|"
	r"oorspronkelijk bericht|doorgestuurd bericht|originalmeddelande|alkuperäinen viesti|"
	r"oryginalna wiadomość|оригинальное сообщение|исходное письмо|пересылаемое письмо|original-nachricht|"
	r"message original|mensagem original|mensagem encaminhada)\s*-{2,}"
	r"|(?:begin forwarded message|начало переадресованного сообщения|anfang der weitergeleiteten nachricht)\s*[:：])"
	r"\s*$",
	re.I,
)
_RULE = re.compile(r"\s*(?:_{10,}|-{10,})\s*$")  # Outlook's line above its header block
# What may follow the quote: a "-- " signature, a rule above a list footer or a gateway's
# disclaimer, or such a footer's first line.
_FOOTER = re.compile(r"\s*(?:--|[-_=*~]{3,})\s*$")
# A footer without a rule opens the way boilerplate does and says what it is early on, so
# that an answer below the quote ("The X200, keep it confidential") is not taken for one.
_FOOTER_OPENER = re.compile(
	r"[\s*\[(]*(?:confidentiality|disclaimer|notice|important|this (?:e-?mail|message|communication)|"
	r"you received this|to unsubscribe|unsubscribe|mailing list|внимание|это (?:письмо|сообщение)|"
	r"данное (?:письмо|сообщение)|настоящее (?:письмо|сообщение)|вы получили|отписаться|рассылка|"
	r"diese (?:e-?mail|nachricht)|hinweis|ce (?:message|courriel|e-?mail)|avis|este (?:mensaje|correo)|aviso)",
	re.I,
)
_FOOTER_WORDS = re.compile(
	r"unsubscribe|mailing list|you received this|confidential|disclaimer|intended (?:only )?for|"
	r"отписаться|рассылк|получили это|конфиденциальн|vertraulich|abmelden|mailingliste|confidentiel|"
	r"désabonner|désinscri|confidencial|darse de baja|suscripción",
	re.I,
)
_FOOTER_WORDS_REACH = 200
_FOOTER_REACH = 12  # lines a signature or footer below the quote may take
_ATTRIBUTION_GAP = 6  # blank lines allowed between an attribution and its quote
_ATTRIBUTION_LINES = 3  # lines a client may wrap an attribution over


def _attribution(line: str, strict: bool) -> bool:
	"""An "On <date>, <sender> wrote:" line; strict also wants the time a client always writes."""
	line = line.strip()
	if not line.endswith((":", "：")) or len(line) > _ATTRIBUTION_MAX:
		return False
	tail = line[-120:]
	verb = _VERB_END.search(tail) is not None
	address = _ADDRESS_END.search(tail) is not None
	if not strict:
		return verb or address
	if not _TIME.search(line):
		return False
	return verb or (address and _YEAR.search(line) is not None)


def _joined(first: str, second: str) -> str:
	"""Two lines of an attribution that the client wrapped (Gmail wraps after the "<")."""
	first = first.rstrip()
	return first + ("" if first.endswith("<") else " ") + second.strip()


class _Lines:
	def __init__(self, lines: list[str], quoted: list[bool], hinted: list[bool] | None = None) -> None:
		self.lines = lines
		self.quoted = quoted  # a "> " line, or (HTML) a line inside a blockquote
		self.hinted = hinted or [False] * len(lines)  # inside markup that holds an attribution
		self.blank = [not line.strip() for line in lines]
		self.next_text = [0] * (len(lines) + 1)  # index of the next non-blank line at or after i
		self.next_text[-1] = len(lines)
		for i in range(len(lines) - 1, -1, -1):
			self.next_text[i] = i if not self.blank[i] else self.next_text[i + 1]

	def attribution_end(self, i: int) -> int | None:
		"""Last line of a strict attribution starting at line i, which clients wrap over a few
		lines (Gmail after the "<" or before "wrote:"); the time must be on its first line."""
		if _attribution(self.lines[i], strict=True):
			return i
		if not _TIME.search(self.lines[i][:_ATTRIBUTION_MAX]):
			return None
		joined = self.lines[i]
		for j in range(i + 1, min(len(self.lines), i + _ATTRIBUTION_LINES)):
			if self.blank[j] or joined.rstrip().endswith((":", "：")) or len(joined) > _ATTRIBUTION_MAX:
				return None
			if _attribution(self.lines[j], strict=True):
				return None
			joined = _joined(joined, self.lines[j])
			if _attribution(joined, strict=True):
				return j
		return None

	def header_block(self, i: int) -> bool:
		"""An Outlook header block starts at line i: "From:" or "Sent:"/"Date:" first (Hotmail and
		Outlook on the web put the date first), each field once, and a date with digits in it, so
		that prose such as "From: the warehouse" does not pass."""
		found = _HEADER.match(self.lines[i])
		if found is None or found.lastgroup not in ("sender", "date"):
			return False
		seen: set[str] = set()
		for j in range(i, min(len(self.lines), i + _HEADER_REACH)):
			if self.blank[j]:
				continue
			found = _HEADER.match(self.lines[j])
			if found is None or found.lastgroup in seen:
				return False
			if found.lastgroup == "date" and not _DIGIT.search(self.lines[j], found.end()):
				return False
			seen.add(found.lastgroup or "")
			if {"sender", "date"} <= seen and seen & {"to", "subject"}:
				return True
		return False

	def history_block(self, i: int) -> bool:
		"""Line i opens a forwarded or Outlook-quoted message (unambiguous markers)."""
		if self.header_block(i):
			return True
		after = self.next_text[i + 1]
		if after >= len(self.lines):
			return False
		if _SEPARATOR.match(self.lines[i]):
			return True
		return bool(_RULE.match(self.lines[i])) and self.header_block(after)

	def footer_start(self) -> int:
		"""First line of a signature or footer below everything quoted, or the line count."""
		start = len(self.lines)
		for k in range(len(self.lines) - 1, max(-1, len(self.lines) - 1 - _FOOTER_REACH), -1):
			if self.quoted[k]:
				break
			line = self.lines[k]
			if _FOOTER.match(line) or (
				_FOOTER_OPENER.match(line) and _FOOTER_WORDS.search(line, 0, _FOOTER_WORDS_REACH)
			):
				start = k
		return start

	def trailing_quote(self) -> int | None:
		"""Start of the quoted block that runs to the end (a signature may follow it)."""
		k = self.footer_start() - 1
		while k >= 0 and self.blank[k]:
			k -= 1
		if k < 0 or not self.quoted[k]:
			return None
		start = k
		while k >= 0 and (self.quoted[k] or self.blank[k]):
			if self.quoted[k]:
				start = k
			k -= 1
		return self._with_attribution(start)

	def _with_attribution(self, start: int) -> int:
		"""Take in the attribution line(s) just above a quoted block."""
		p = start - 1
		while p >= 0 and self.blank[p] and start - p <= _ATTRIBUTION_GAP:
			p -= 1
		if p < 0 or self.blank[p]:
			return start
		if _attribution(self.lines[p], strict=True):
			return p
		for k in range(p - 1, max(-1, p - _ATTRIBUTION_LINES), -1):
			if self.blank[k]:
				break
			if self.attribution_end(k) == p:
				return k
		return p if self.hinted[p] or _attribution(self.lines[p], strict=False) else start

	def quote_start(self, unquoted_history: bool) -> int | None:
		"""Index of the line where the quoted history starts, or None.

		unquoted_history: an attribution followed by lines without "> " starts the history
		(plain text, where clients do not always prefix the quote); HTML wants a blockquote.
		"""
		tail = self.trailing_quote()
		for i in range(len(self.lines) if tail is None else tail):
			if self.blank[i] or self.quoted[i]:
				continue
			if self.history_block(i):
				return i
			if unquoted_history:
				last = self.attribution_end(i)
				if last is not None:
					after = self.next_text[last + 1]
					if after < len(self.lines) and not self.quoted[after]:
						return i
		return tail


# --- Plain text --------------------------------------------------------------------------


def split_text(text: str) -> SplitReply:
	"""New text and quoted history of a plain-text reply."""
	if not isinstance(text, str):
		raise TypeError(f"split_text wants a str, not {type(text).__name__}")
	lines = text.splitlines()
	found = _Lines(lines, [line.lstrip().startswith(">") for line in lines]).quote_start(
		unquoted_history=True
	)
	if found is None:
		return SplitReply(text, "")
	pos = [0, *accumulate(len(piece) for piece in text.splitlines(keepends=True))][found]
	return SplitReply(text[:pos].rstrip(), text[pos:])


# --- HTML --------------------------------------------------------------------------------

_VOID = frozenset(
	"area base br col embed hr img input link meta param source track wbr basefont bgsound frame keygen".split()
)
_BREAKS = frozenset(
	"address article aside blockquote body br caption center dd details dialog dir div dl dt fieldset"
	" figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr html legend li main menu nav ol option p"
	" pre section summary table tbody td tfoot th thead tr ul".split()
)
_HIDDEN = frozenset("head script style template title".split())
_MEDIA = frozenset("audio canvas embed iframe img input math object picture svg video".split())
_FRAME = frozenset({"html", "head", "body"})
_BLANK_VOID = frozenset({"br", "hr", "wbr"})
_CLOSES_P = frozenset(
	"address article aside blockquote center details dialog dir div dl fieldset figcaption figure footer"
	" form h1 h2 h3 h4 h5 h6 header hr li main menu nav ol p pre section table ul".split()
)
# An open element on top of the stack that these start tags close, as browsers do.
_IMPLIED_END = {
	"p": _CLOSES_P,
	"li": frozenset({"li"}),
	"dt": frozenset({"dt", "dd"}),
	"dd": frozenset({"dt", "dd"}),
	"td": frozenset({"td", "th", "tr"}),
	"th": frozenset({"td", "th", "tr"}),
	"tr": frozenset({"tr"}),
	"option": frozenset({"option"}),
	"head": frozenset({"body"}),
}
_OUTLOOK_RULE = re.compile(r"border-top\s*:\s*solid\s+#(?:e1e1e1|b5c4df)", re.I)


def _classes(token: Token) -> set[str]:
	return set((token.attrs or {}).get("class", "").lower().split())


def _opens_history(token: Token) -> bool:
	attrs = token.attrs
	if not attrs or not ("class" in attrs or "id" in attrs or "style" in attrs):
		return False
	ident = attrs.get("id", "").lower()
	return bool(
		_classes(token) & HISTORY_CLASSES
		or ident in HISTORY_IDS
		or ident.endswith(HISTORY_ID_ENDS)
		or _OUTLOOK_RULE.search(attrs.get("style", ""))
	)


class _OpenElements:
	"""The elements open at each point of the token stream, closed the way browsers close them."""

	def __init__(self, tokens: list[Token]) -> None:
		self.tokens = tokens
		self.stack: list[int] = []  # token indices of open start tags
		self.stack_flags: list[tuple[str, ...]] = []
		self.open_count: dict[str, int] = {}
		self.depth = {"quote": 0, "hidden": 0, "pre": 0, "attribution": 0}
		self.opened_at: dict[int, int] = {}  # end tag index -> its start tag index

	def _flags(self, index: int) -> tuple[str, ...]:
		token = self.tokens[index]
		if not token.attrs and token.tag not in ("blockquote", "pre") and token.tag not in _HIDDEN:
			return ()
		flags = []
		if token.tag == "blockquote":
			flags.append("quote")
		if token.tag in _HIDDEN:
			flags.append("hidden")
		if token.tag == "pre":
			flags.append("pre")
		if _classes(token) & ATTRIBUTION_CLASSES:
			flags.append("attribution")
		return tuple(flags)

	def _push(self, index: int) -> None:
		tag = self.tokens[index].tag
		flags = self._flags(index)
		self.stack.append(index)
		self.stack_flags.append(flags)
		self.open_count[tag] = self.open_count.get(tag, 0) + 1
		for flag in flags:
			self.depth[flag] += 1

	def _pop(self) -> int:
		index = self.stack.pop()
		self.open_count[self.tokens[index].tag] -= 1
		for flag in self.stack_flags.pop():
			self.depth[flag] -= 1
		return index

	def step(self, index: int) -> None:
		token = self.tokens[index]
		if token.kind == "start" and token.tag not in _VOID:
			while self.stack and token.tag in _IMPLIED_END.get(self.tokens[self.stack[-1]].tag, ()):
				self._pop()
			self._push(index)
		elif token.kind == "end" and self.open_count.get(token.tag, 0) > 0:
			opened = self._pop()
			while self.tokens[opened].tag != token.tag:
				opened = self._pop()
			self.opened_at[index] = opened


class _HtmlReply:
	"""The reply's tokens, read as lines of text with where each line starts in the source."""

	def __init__(self, html: str) -> None:
		self.html = html
		self.tokens = tokenize(html)
		self.lines: list[str] = []
		self.line_starts: list[int] = []
		self.quoted: list[bool] = []  # the line starts inside a blockquote
		self.hinted: list[bool] = []
		self.content = [0]  # content tokens (visible text, images) before each token index
		self.history_markers: list[int] = []
		self.elements = _OpenElements(self.tokens)
		self._read()

	def text_of(self, index: int) -> str:
		token = self.tokens[index]
		text = self.html[token.start : token.end]
		return unescape(text) if token.kind == "entity" else text

	def _read(self) -> None:
		elements, depth = self.elements, self.elements.depth
		parts: list[str] = []
		line_start, first_quoted, first_hinted, has_text = 0, False, False, False

		def flush() -> None:
			nonlocal has_text
			if has_text:
				self.lines.append(" ".join("".join(parts).split()))
				self.line_starts.append(line_start)
				self.quoted.append(first_quoted)
				self.hinted.append(first_hinted)
			parts.clear()
			has_text = False

		for index, token in enumerate(self.tokens):
			visible = False
			if token.kind in ("data", "entity"):
				if not depth["hidden"]:
					text = self.text_of(index)
					visible = bool(text.strip())
					# In <pre> (and only there) a newline of the source ends a line.
					pieces = text.split("\n") if depth["pre"] and token.kind == "data" else [text]
					piece_start = token.start
					for number, piece in enumerate(pieces):
						if number:
							flush()
							line_start = piece_start
						parts.append(piece)
						piece_start += len(piece) + 1
						if piece.strip() and not has_text:
							has_text = True
							first_quoted = depth["quote"] > 0
							first_hinted = depth["attribution"] > 0
			elif token.kind != "other":
				visible = token.tag in _MEDIA and not depth["hidden"]
				if token.tag in _BREAKS:
					# The next line starts before an opening tag, after a closing or empty one.
					opens = token.kind == "start" and token.tag not in _VOID
					if has_text:
						flush()
						line_start = token.start if opens else token.end
					elif token.kind == "end":
						line_start = token.end
				if token.kind in ("start", "startend") and not depth["hidden"] and _opens_history(token):
					self.history_markers.append(index)
				elements.step(index)
			self.content.append(self.content[-1] + visible)
		flush()

	def content_after(self, index: int) -> bool:
		return self.content[-1] > self.content[index]

	def split_offset(self) -> int | None:
		marker = next((self.tokens[i].start for i in self.history_markers if self.content_after(i)), None)
		candidates = [] if marker is None else [marker]
		quoted = [
			inside or line.startswith(">") for inside, line in zip(self.quoted, self.lines, strict=True)
		]
		found = _Lines(self.lines, quoted, self.hinted).quote_start(unquoted_history=False)
		if found is not None:
			candidates.append(self.line_starts[found])
		return min(candidates, default=None)

	def pull_back(self, index: int) -> int:
		"""Move the split before the blank markup (breaks, empty paragraphs) that leads to the quote."""
		while index > 0:
			before = self.tokens[index - 1]
			if before.kind in ("data", "entity"):
				if self.text_of(index - 1).strip():
					break
			elif before.kind == "end":
				opened = self.elements.opened_at.get(index - 1)
				if opened is None or before.tag in _FRAME or self.content[index] > self.content[opened]:
					break
				index = opened
				continue
			elif before.kind != "other" and (
				before.tag in _MEDIA
				or before.tag in _FRAME
				or (before.tag in _VOID and before.tag not in _BLANK_VOID)
			):
				break
			index -= 1
		return index

	def open_before(self, index: int) -> list[int]:
		elements = _OpenElements(self.tokens)
		for i in range(index):
			elements.step(i)
		return elements.stack

	def split(self) -> SplitReply:
		offset = self.split_offset()
		if offset is None:
			return SplitReply(self.html, "")
		index = token_at(self.tokens, offset)
		if self.tokens[index].start == offset:
			index = self.pull_back(index)
			offset = self.tokens[index].start
		stack = self.open_before(index)
		closing = "".join(f"</{self.tokens[i].tag}>" for i in reversed(stack))
		reopening = "".join(self.html[self.tokens[i].start : self.tokens[i].end] for i in stack)
		return SplitReply(self.html[:offset] + closing, reopening + self.html[offset:])


def split_html(html: str) -> SplitReply:
	"""New part and quoted history of an HTML reply, each closed so that it renders alone."""
	if not isinstance(html, str):
		raise TypeError(f"split_html wants a str, not {type(html).__name__}")
	return _HtmlReply(html).split()


# --- The split as HTML, and collapsed for the timeline --------------------------------------


def text_to_html(text: str) -> str:
	"""Plain text shown as HTML with its line breaks, escaped."""
	return "<br>\n".join(escape(line) for line in text.splitlines())


# Bodies longer than this are shown whole: the HTML splitter holds a token per tag and
# entity, tens of bytes per byte of input, and no reply worth collapsing is this long.
SPLIT_MAX_CHARS = 1024 * 1024


def split_reply(html: str, text: str) -> SplitReply:
	"""New part and quoted history of a message as HTML: its HTML body, or its text as HTML."""
	if len(html) > SPLIT_MAX_CHARS or (not html.strip() and len(text) > SPLIT_MAX_CHARS):
		return SplitReply(html if html.strip() else text_to_html(text), "")
	if html.strip():
		return split_html(html)
	reply = split_text(text)
	return SplitReply(text_to_html(reply.new), text_to_html(reply.quoted))


_COLLAPSED_OPEN = '<details class="usedesk-quoted"><summary>'
_COLLAPSED = re.compile(re.escape(_COLLAPSED_OPEN) + r".*?</summary>(?P<quoted>.*)</details>\s*$", re.S)


def collapsed(new: str, quoted: str, label: str) -> str:
	"""HTML with the quoted history in a closed <details>: the timeline shows a toggle, and
	`expanded` gives the whole message back for quoting it in a reply."""
	if not quoted.strip():
		return new
	return f"{new}{_COLLAPSED_OPEN}{escape(label)}</summary>{quoted}</details>"


def expanded(html: str) -> str:
	"""Undo `collapsed`; any other HTML comes back as it is."""
	return "".join(parts_of(html))


def parts_of(html: str) -> tuple[str, str]:
	"""The new part and the quoted history that `collapsed` joined; ("html", "") for other HTML."""
	marker = html.rfind(_COLLAPSED_OPEN)
	match = _COLLAPSED.match(html, marker) if marker >= 0 else None
	return (html[:marker], match["quoted"]) if match else (html, "")

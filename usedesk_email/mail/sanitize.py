"""An allow-list HTML sanitiser for mail bodies shown to agents inside the desk.

Mail HTML is hostile input rendered in a logged-in session, so the output is rebuilt from
parsed tokens: only listed tags and attributes survive, every text and attribute is
re-escaped, URLs must use a harmless scheme, and elements that can run code or change the
page (script, style, iframe, object, form, meta, base, svg...) are dropped. Ordinary
formatting, links, tables, the markup of quoted history (class/id/type=cite) and `cid:`
images stay.
"""

import re
from html import escape
from html.parser import HTMLParser

from usedesk_email.mail.html_tokens import defuse

_ALLOWED_TAGS = frozenset(
	"a abbr address article aside b bdi bdo big blockquote br caption center cite code col colgroup"
	" dd del details dfn div dl dt em figcaption figure font footer h1 h2 h3 h4 h5 h6 header hr i img"
	" ins kbd li main mark nav ol p pre q rp rt ruby s samp section small span strike strong sub"
	" summary sup table tbody td tfoot th thead time tr tt u ul var wbr".split()
)
_VOID_TAGS = frozenset("br col hr img wbr".split())
# Dropped together with everything inside them.
_DROP_WITH_CONTENT = frozenset(
	"script style title iframe frameset object applet noembed noframes noscript template svg math"
	" xml textarea select".split()
)
_GLOBAL_ATTRS = frozenset("align class dir id lang style title valign bgcolor width height".split())
_TAG_ATTRS = {
	"a": {"href", "name"},
	"img": {"src", "alt", "border", "hspace", "vspace"},
	"font": {"color", "face", "size"},
	"table": {"border", "cellpadding", "cellspacing", "summary", "frame", "rules"},
	"td": {"colspan", "rowspan", "nowrap", "headers", "scope", "abbr", "axis"},
	"th": {"colspan", "rowspan", "nowrap", "headers", "scope", "abbr", "axis"},
	"col": {"span"},
	"colgroup": {"span"},
	"ol": {"start", "type", "reversed"},
	"ul": {"type"},
	"li": {"value", "type"},
	"blockquote": {"type", "cite"},
	"q": {"cite"},
	"del": {"cite", "datetime"},
	"ins": {"cite", "datetime"},
	"time": {"datetime"},
	"hr": {"size", "noshade"},
}
_URL_ATTRS = frozenset({"href", "src", "cite"})
_SAFE_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid", "ftp"})
_INLINE_IMAGE = re.compile(r"^data:image/(png|gif|jpe?g|webp|bmp);", re.I)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):", re.I)
_INVISIBLE = re.compile(r"[\x00-\x20\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]+")
# CSS that can run code, load resources or lay itself over the desk's own interface.
# "<![" not followed by a name makes Python 3.11's html.parser raise
_BAD_MARKED_SECTION = re.compile(r"<!\[(?![A-Za-z])")
_BAD_CSS = re.compile(
	r"expression|javascript|vbscript|url\s*\(|@import|behavior|-moz-binding|position|\\|/\*", re.I
)


def safe_url(value: str, tag: str) -> str | None:
	"""The URL if its scheme is harmless (relative URLs are), else None."""
	compact = _INVISIBLE.sub("", value)
	match = _SCHEME.match(compact)
	if not match:
		return value.strip() if ":" not in compact.split("/", 1)[0] else None
	scheme = match.group(1).lower()
	if scheme in _SAFE_SCHEMES:
		return value.strip()
	if scheme == "data" and tag == "img" and _INLINE_IMAGE.match(compact):
		return compact
	return None


def safe_style(value: str) -> str:
	"""Keep the harmless declarations of a style attribute."""
	kept = []
	for declaration in value.split(";"):
		prop, colon, val = declaration.partition(":")
		if colon and prop.strip() and not _BAD_CSS.search(declaration):
			kept.append(f"{prop.strip()}:{val.strip()}")
	return ";".join(kept)


class _Sanitiser(HTMLParser):
	def __init__(self) -> None:
		super().__init__(convert_charrefs=True)
		self.out: list[str] = []
		self.open: list[str] = []
		self.skipping: list[str] = []

	def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
		if self.skipping:
			if tag == self.skipping[0]:
				self.skipping.append(tag)  # nested same-name element, e.g. <svg><svg>
			return
		if tag in _DROP_WITH_CONTENT:
			self.skipping.append(tag)
			return
		self._emit_start(tag, attrs)

	def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
		if not self.skipping and tag not in _DROP_WITH_CONTENT:
			self._emit_start(tag, attrs)
			if tag in _ALLOWED_TAGS and tag not in _VOID_TAGS:
				self.handle_endtag(tag)

	def _emit_start(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
		if tag not in _ALLOWED_TAGS:
			return  # unknown wrappers (html, body, form, o:p...) vanish, their text stays
		allowed = _TAG_ATTRS.get(tag, ())
		parts = [tag]
		for name, value in attrs:
			if name not in _GLOBAL_ATTRS and name not in allowed:
				continue
			value = value or ""
			if name in _URL_ATTRS:
				value = safe_url(value, tag)
				if value is None:
					continue
			elif name == "style":
				value = safe_style(value)
				if not value:
					continue
			parts.append(f'{name}="{escape(value, quote=True)}"')
		self.out.append(f"<{' '.join(parts)}>")
		if tag not in _VOID_TAGS:
			self.open.append(tag)

	def handle_endtag(self, tag: str) -> None:
		if self.skipping:
			if tag == self.skipping[-1]:
				self.skipping.pop()
			return
		if tag in self.open:
			while self.open:
				closing = self.open.pop()
				self.out.append(f"</{closing}>")
				if closing == tag:
					break

	def handle_data(self, data: str) -> None:
		if not self.skipping:
			self.out.append(escape(data.replace("\x00", ""), quote=False))

	def result(self) -> str:
		self.close()
		self.out.extend(f"</{tag}>" for tag in reversed(self.open))
		return "".join(self.out).strip()


def sanitise_html(html: str) -> str:
	"""Safe HTML to show inside the desk; never raises on any input."""
	if not html:
		return ""
	parser = _Sanitiser()
	try:
		parser.feed(defuse(_BAD_MARKED_SECTION.sub("&lt;![", html.replace("\x00", ""))))
		return parser.result()
	except AssertionError:  # html.parser's last ways to give up on a malformed declaration
		return escape(html.replace("\x00", ""), quote=False)

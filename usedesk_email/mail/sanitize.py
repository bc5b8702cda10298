"""An allow-list HTML sanitiser for mail bodies shown to agents inside the desk.

Mail HTML is hostile input rendered in a logged-in session, so the output is rebuilt from
parsed tokens: only listed tags and attributes survive, every text and attribute is
re-escaped, and URLs must be absolute with a harmless scheme. Elements whose content is
code or hidden text (script, style, iframe, title, textarea...) go with their content;
other unknown elements (svg, object, form...) go but their text stays, as a browser shows it.

Mail HTML never reaches outside the mail by itself: classes and ids other than the quote
markers of mail clients go (they would borrow the desk's styles), styles are an allow-list
of properties without positioning or functions, relative URLs go (`/api/method/logout` in
an image would act in the agent's session), and remote images keep their address only in
`data-remote-src`, loaded when the agent asks ("Show images"). Nesting is capped, so the
output never takes a browser or the HTML-to-text converter more than linear work.
"""

import re
from collections.abc import Mapping
from html import escape
from html.parser import HTMLParser

from usedesk_email.mail.html_tokens import defuse
from usedesk_email.mail.quote_markers import kept_classes, kept_id

_ALLOWED_TAGS = frozenset(
	"a abbr address article aside b bdi bdo big blockquote br caption center cite code col colgroup"
	" dd del details dfn div dl dt em figcaption figure font footer h1 h2 h3 h4 h5 h6 header hr i img"
	" ins kbd li main mark nav ol p pre q rp rt ruby s samp section small span strike strong sub"
	" summary sup table tbody td tfoot th thead time tr tt u ul var wbr".split()
)
_VOID_TAGS = frozenset("br col hr img wbr".split())
# Dropped together with everything inside them: code, or text a browser does not show.
_DROP_WITH_CONTENT = frozenset(
	"script style title iframe frameset noembed noframes noscript template textarea xmp".split()
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
_REMOTE_SCHEMES = frozenset({"http", "https", "ftp"})
REMOTE_SRC = "data-remote-src"  # where a remote image's address waits for "Show images"
_INLINE_IMAGE = re.compile(r"^data:image/(png|gif|jpe?g|webp|bmp);", re.I)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):", re.I)
_INVISIBLE = re.compile(r"[\x00-\x20\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]+")
# "<![" not followed by a name makes Python 3.11's html.parser raise
_BAD_MARKED_SECTION = re.compile(r"<!\[(?![A-Za-z])")
# Properties that format text and boxes in place; nothing that positions, transforms or loads.
_CSS_PROPERTIES = frozenset(
	"""color background-color background border border-top border-right border-bottom border-left
	border-color border-style border-width border-radius border-collapse border-spacing
	border-top-color border-right-color border-bottom-color border-left-color border-top-style
	border-right-style border-bottom-style border-left-style border-top-width border-right-width
	border-bottom-width border-left-width margin margin-top margin-right margin-bottom margin-left
	padding padding-top padding-right padding-bottom padding-left font font-family font-size
	font-style font-variant font-weight text-align text-decoration text-indent text-transform
	letter-spacing line-height word-spacing white-space word-break word-wrap overflow-wrap
	vertical-align width height min-width max-width min-height max-height display list-style
	list-style-type list-style-position table-layout direction unicode-bidi float clear
	caption-side empty-cells""".split()
)
_CSS_FUNCTION = re.compile(r"([a-z-]*)\s*\(", re.I)
_CSS_COLOR_FUNCTIONS = frozenset({"rgb", "rgba", "hsl", "hsla"})
_BAD_CSS_VALUE = re.compile(r"[\\<>@]|/\*|expression|javascript|vbscript|url|image|v[wh]\b|vmin|vmax", re.I)
_NEGATIVE = re.compile(r"(?:^|[\s,])-\s*[\d.]")
_DISPLAY_VALUES = frozenset(
	"block inline inline-block none table table-row table-cell table-row-group table-header-group"
	" table-footer-group list-item flex inline-flex".split()
)
MAX_DEPTH = 100  # open elements; deeper markup keeps its text, not its tags
# Elements whose every nested level indents each line of the text version ("> ", list
# markers): fewer levels, so the text stays within a few times the size of the HTML.
_INDENTING = frozenset({"blockquote", "ul", "ol", "dl", "li", "dd"})
MAX_INDENT_DEPTH = 24


def safe_url(value: str, tag: str) -> str | None:
	"""The URL if it is absolute with a harmless scheme (or an inline image), else None."""
	compact = _INVISIBLE.sub("", value)
	match = _SCHEME.match(compact)
	if not match:
		return value.strip() if compact.startswith("//") and len(compact) > 2 else None
	scheme = match.group(1).lower()
	if scheme in _SAFE_SCHEMES:
		return value.strip()
	if scheme == "data" and tag == "img" and _INLINE_IMAGE.match(compact):
		return compact
	return None


def is_remote(url: str) -> bool:
	match = _SCHEME.match(url)
	return url.startswith("//") or bool(match and match.group(1).lower() in _REMOTE_SCHEMES)


def safe_style(value: str) -> str:
	"""Keep the declarations of allowed properties whose values call no function but colours."""
	kept = []
	for declaration in value.split(";"):
		prop, colon, val = declaration.partition(":")
		prop, val = prop.strip().lower(), val.strip()
		if not colon or prop not in _CSS_PROPERTIES or not val or _BAD_CSS_VALUE.search(val):
			continue
		if any(f.lower() not in _CSS_COLOR_FUNCTIONS for f in _CSS_FUNCTION.findall(val)):
			continue
		if prop.startswith("margin") and _NEGATIVE.search(val):
			continue  # pulls the mail over what stands above it
		if prop == "display" and val.lower() not in _DISPLAY_VALUES:
			continue
		kept.append(f"{prop}:{val}")
	return ";".join(kept)


class _Sanitiser(HTMLParser):
	def __init__(self, load_images: bool, inline: Mapping[str, str]) -> None:
		super().__init__(convert_charrefs=True)
		self.load_images = load_images
		self.inline = inline
		self.out: list[str] = []
		self.open: list[str] = []
		self.open_count: dict[str, int] = {}
		self.indent_depth = 0
		self.skipping: list[str] = []

	def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
		if self.skipping:
			if tag == self.skipping[0]:
				self.skipping.append(tag)  # nested same-name element, e.g. <noscript><noscript>
			return
		if tag in _DROP_WITH_CONTENT:
			self.skipping.append(tag)
			return
		self._emit_start(tag, attrs)

	def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
		if not self.skipping and tag not in _DROP_WITH_CONTENT and self._emit_start(tag, attrs):
			if tag not in _VOID_TAGS:
				self.handle_endtag(tag)

	def _emit_start(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
		"""Write the start tag if it is allowed here; True when written."""
		if tag not in _ALLOWED_TAGS:
			return False  # unknown wrappers (html, body, form, svg, o:p...) vanish, their text stays
		void = tag in _VOID_TAGS
		indenting = tag in _INDENTING
		if not void and (
			len(self.open) >= MAX_DEPTH or (indenting and self.indent_depth >= MAX_INDENT_DEPTH)
		):
			return False
		parts = [tag, *self._attributes(tag, attrs)]
		if tag == "img" and not any(p.startswith(("src=", f"{REMOTE_SRC}=")) for p in parts[1:]):
			return False  # an image that would load nothing, or only something we refused
		if tag == "a" and any(p.startswith("href=") for p in parts[1:]):
			parts += ['target="_blank"', 'rel="noopener noreferrer"']
		self.out.append(f"<{' '.join(parts)}>")
		if not void:
			self.open.append(tag)
			self.open_count[tag] = self.open_count.get(tag, 0) + 1
			self.indent_depth += indenting
		return True

	def _attributes(self, tag: str, attrs: list[tuple[str, str | None]]) -> list[str]:
		allowed = _TAG_ATTRS.get(tag, ())
		parts: list[str] = []
		for name, value in attrs:
			if name == REMOTE_SRC and tag == "img" and self.load_images:
				name = "src"  # our own stored placeholder, quoted into a letter
			elif name not in _GLOBAL_ATTRS and name not in allowed:
				continue
			value = value or ""
			if name == "src" and tag == "img" and value.strip() in self.inline:
				value = f"cid:{self.inline[value.strip()]}"  # a site file the letter carries
			if name in _URL_ATTRS:
				value = safe_url(value, tag)
				if value is None:
					continue
				if name == "src" and not self.load_images and is_remote(value):
					name = REMOTE_SRC
			elif name == "style":
				value = safe_style(value)
			elif name == "class":
				value = kept_classes(value)
			elif name == "id":
				value = kept_id(value)
			if value or name not in ("style", "class", "id"):
				parts.append(f'{name}="{escape(value, quote=True)}"')
		return parts

	def handle_endtag(self, tag: str) -> None:
		if self.skipping:
			if tag == self.skipping[-1]:
				self.skipping.pop()
			return
		if self.open_count.get(tag):
			while self.open:
				closing = self._pop()
				self.out.append(f"</{closing}>")
				if closing == tag:
					break

	def _pop(self) -> str:
		tag = self.open.pop()
		self.open_count[tag] -= 1
		self.indent_depth -= tag in _INDENTING
		return tag

	def handle_data(self, data: str) -> None:
		if not self.skipping:
			self.out.append(escape(data.replace("\x00", ""), quote=False))

	def result(self) -> str:
		self.close()
		self.out.extend(f"</{tag}>" for tag in reversed(self.open))
		return "".join(self.out).strip()


def sanitise_html(html: str, *, load_images: bool = False, inline: Mapping[str, str] | None = None) -> str:
	"""Safe HTML to show inside the desk; never raises on any input.

	`load_images` is for a letter's quoted history: the reader's mail client decides about
	remote images there, so they keep their address (ours in `data-remote-src` too).
	`inline` maps image URLs (the site's own files) to the Content-IDs of the parts the letter
	carries them in; such an image's ``src`` becomes ``cid:<id>``, other relative ones still go.
	"""
	if not html:
		return ""
	parser = _Sanitiser(load_images, inline or {})
	try:
		parser.feed(defuse(_BAD_MARKED_SECTION.sub("&lt;![", html.replace("\x00", ""))))
		return parser.result()
	except AssertionError:  # html.parser's last ways to give up on a malformed declaration
		return escape(html.replace("\x00", ""), quote=False)

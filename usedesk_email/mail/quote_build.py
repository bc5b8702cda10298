"""The quoted history under a reply: "On <date>, <sender> wrote:" and the message, newest first.

Each earlier message gets its own attribution line and ``<blockquote type="cite">`` (HTML)
or ``> `` lines (text), flat rather than nested, newest first, so the latest context is
at the top where a client reads it. The history comes from inbound mail, so its HTML is
run through the engine's sanitiser again (scripts and handlers never travel back out).

Clipping keeps letters small and servers happy: at most `QUOTE_MAX_MESSAGES` (10)
messages, and only as many as fit in `QUOTE_MAX_BYTES` (64 KiB) of quoted HTML and as
many of quoted text; older ones are left out whole. The newest message is always quoted;
if it alone is over the budget, its text is quoted (in both parts), cut at half the
budget. Whenever something was left out, a note says that older history is not quoted
(the whole conversation stays in the ticket).

Pass each message's own part (without the history it quoted itself) where the inbound
splitter found it, or the quote repeats the conversation within itself.

The attribution is written in the letter's language (English or Russian) and the site's time
zone, independent of the server locale.
"""

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from usedesk_email.mail.addresses import header_text
from usedesk_email.mail.message import Address
from usedesk_email.mail.parse import html_to_text
from usedesk_email.mail.quote_split import text_to_html
from usedesk_email.mail.sanitize import sanitise_html

QUOTE_MAX_MESSAGES = 10
QUOTE_MAX_BYTES = 64 * 1024
CLIPPED_NOTE = "Older messages of this conversation are not quoted."
# Per language: day and month names, the attribution, and the clipping note.
_WORDS = {
	"en": (
		("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
		("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
		"On {day}, {date} {month} {year} at {time}, {sender} wrote:",
		CLIPPED_NOTE,
	),
	"ru": (
		("пн", "вт", "ср", "чт", "пт", "сб", "вс"),
		("янв.", "февр.", "мар.", "апр.", "мая", "июн.", "июл.", "авг.", "сент.", "окт.", "нояб.", "дек."),
		"{day}, {date} {month} {year} г. в {time}, {sender} написал(а):",
		"Более ранние письма этой переписки не процитированы.",
	),
}
LANGUAGES = tuple(_WORDS)


@dataclass(frozen=True)
class QuotedMessage:
	sender: Address
	date: datetime  # UTC; a naive value is taken as UTC
	text: str = ""
	html: str = ""  # as stored (sanitised again here)


@dataclass(frozen=True)
class Quote:
	html: str
	text: str
	clipped: bool


def build_quote(
	history: Sequence[QuotedMessage],
	language: str = "en",
	zone: str = "UTC",
	inline: Mapping[str, str] | None = None,
) -> Quote:
	"""The quote of `history` (any order), newest first, clipped as the module says; the
	attribution in `language` (one of LANGUAGES, else English) and the time zone `zone`;
	images whose URL is in `inline` point at the letter's parts (see `sanitise_html`)."""
	days, months, attribution_line, clipped_note = _WORDS.get(language, _WORDS["en"])
	tz = ZoneInfo(zone)
	ordered = sorted(history, key=lambda m: _utc(m.date), reverse=True)
	html_parts: list[str] = []
	text_parts: list[str] = []
	html_used = text_used = 0
	clipped = len(ordered) > QUOTE_MAX_MESSAGES
	for index, message in enumerate(ordered[:QUOTE_MAX_MESSAGES]):
		text = message.text.strip() or html_to_text(message.html)
		body = (
			sanitise_html(message.html, load_images=True, inline=inline)
			if message.html.strip()
			else text_to_html(text)
		)
		if html_used + _size(body) > QUOTE_MAX_BYTES or text_used + _size(text) > QUOTE_MAX_BYTES:
			clipped = True
			if index:
				break
			text = _cut(text, QUOTE_MAX_BYTES // 2)
			body = text_to_html(text)
		d = _utc(message.date).astimezone(tz)
		attribution = attribution_line.format(
			day=days[d.weekday()],
			date=d.day,
			month=months[d.month - 1],
			year=d.year,
			time=f"{d:%H:%M}",
			sender=header_text(str(message.sender)),
		)
		html_parts.append(
			f'<div class="usedesk-quote"><p>{html.escape(attribution)}</p>'
			f'<blockquote type="cite" style="margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex">'
			f"{body}</blockquote></div>"
		)
		text_parts.append(f"{attribution}\n{quote_lines(text)}")
		html_used += _size(body)
		text_used += _size(text)
	if clipped:
		html_parts.append(f'<p class="usedesk-quote-clipped"><i>{clipped_note}</i></p>')
		text_parts.append(f"[{clipped_note}]")
	return Quote(html="\n".join(html_parts), text="\n\n".join(text_parts), clipped=clipped)


def quote_lines(text: str) -> str:
	"""Text quoted the way mail clients do: "> " before each line, ">" before empty ones."""
	return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _cut(text: str, limit: int) -> str:
	"""At most about `limit` UTF-8 bytes of text, marked as cut."""
	return text.encode()[:limit].decode(errors="ignore").rstrip() + " [...]"


def _size(text: str) -> int:
	return len(text.encode())


def _utc(value: datetime) -> datetime:
	return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

"""Class names and ids that mail clients put around quoted history.

The quote splitter looks for them, and they are the only classes and ids the sanitiser lets
through: any other class could borrow the desk's own styles (a fake dialog over the page).
"""

HISTORY_CLASSES = frozenset({"gmail_quote", "gmail_quote_container", "yahoo_quoted", "protonmail_quote"})
ATTRIBUTION_CLASSES = frozenset({"moz-cite-prefix", "gmail_attr"})
HISTORY_IDS = frozenset({"mail-editor-reference-message-container", "olk_src_body_section", "zwchr"})
HISTORY_ID_ENDS = ("divrplyfwdmsg", "appendonsend")  # Outlook on the web; nested copies get "x_"


def kept_classes(value: str) -> str:
	"""The quote-marker classes of a class attribute, in their order; "" when none."""
	return " ".join(c for c in value.split() if c.lower() in HISTORY_CLASSES | ATTRIBUTION_CLASSES)


def kept_id(value: str) -> str:
	ident = value.strip().lower()
	return value.strip() if ident in HISTORY_IDS or ident.endswith(HISTORY_ID_ENDS) else ""

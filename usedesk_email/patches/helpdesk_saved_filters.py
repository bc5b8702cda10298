"""The Ticket list's saved views on sites that had the app before them."""

from usedesk_email.ticket_views import ensure_saved_filters


def execute() -> None:
	ensure_saved_filters()

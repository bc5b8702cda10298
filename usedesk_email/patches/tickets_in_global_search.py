"""Ticket in global search, and every stored ticket indexed with its messages: the
ingestion never indexed what it stored."""

from usedesk_email.install import add_ticket_to_global_search
from usedesk_email.search_index import reindex_all


def execute() -> None:
	add_ticket_to_global_search()
	reindex_all()

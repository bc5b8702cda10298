"""The mail engine: parsing, threading, quoting, composing, IMAP and SMTP sessions.

Nothing here imports frappe, so the engine is tested on its own against real servers;
the doctype controllers, hooks and API call into it.
"""

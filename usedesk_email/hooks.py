app_name = "usedesk_email"
app_title = "Usedesk Email"
app_publisher = "usedesk_email developers"
app_description = (
	"A helpdesk e-mail channel for Frappe: mailboxes become Tickets, agents reply with signatures and quotes"
)
app_email = "dev@usedesk-email.invalid"
app_license = "mit"

required_apps = []

export_python_type_annotations = True

before_install = "usedesk_email.install.ensure_roles"
after_install = [
	"usedesk_email.install.index_file_hashes",
	"usedesk_email.install.grant_communication_read",
	"usedesk_email.install.add_ticket_to_global_search",
	"usedesk_email.ticket_views.ensure_saved_filters",
	"usedesk_email.inbound.postfix.refresh_recipient_table",
	"usedesk_email.install.compile_translations",
]
after_migrate = [
	"usedesk_email.install.ensure_roles",
	"usedesk_email.install.index_file_hashes",
	"usedesk_email.install.grant_communication_read",
	"usedesk_email.inbound.postfix.refresh_recipient_table",
	"usedesk_email.install.compile_translations",
]
before_uninstall = "usedesk_email.uninstall.before_uninstall"
after_uninstall = "usedesk_email.uninstall.after_uninstall"

scheduler_events = {
	"cron": {
		"*/5 * * * *": ["usedesk_email.inbound.poll.enqueue_polls"],
		"* * * * *": ["usedesk_email.outbound.delivery.retry_due"],
	},
}

# Read by the setup wizard (and Global Search Settings' reset); see install.add_ticket_to_global_search.
global_search_doctypes = {"Default": [{"doctype": "Ticket"}]}

has_permission = {"Communication": "usedesk_email.permissions.communication"}

doc_events = {
	"Communication": {
		"after_insert": "usedesk_email.outbound.delivery.queue_sending",
		"on_trash": "usedesk_email.search_index.on_communication_trash",
	},
	# Postfix's table of the internal addresses it may accept (usedesk_email/postfix.py).
	"Email Channel": {
		"on_update": "usedesk_email.inbound.postfix.refresh_after_commit",
		"on_trash": "usedesk_email.inbound.postfix.refresh_after_commit",
		"after_rename": "usedesk_email.inbound.postfix.refresh_after_commit",
	},
	"Email Channel Settings": {
		"on_update": "usedesk_email.inbound.postfix.refresh_after_commit",
	},
	# An agent's own saved filter of the Ticket list (usedesk_email/ticket_views.py).
	"User": {"on_update": "usedesk_email.ticket_views.on_user_update"},
}

# The desk's e-mail composer on a Ticket: send through the channel, never also via Frappe.
override_whitelisted_methods = {
	"frappe.core.doctype.communication.email.make": "usedesk_email.api.make",
	"frappe.client.get_count": "usedesk_email.api.get_count",
}

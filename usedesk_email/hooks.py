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
after_install = "usedesk_email.install.index_file_hashes"
after_migrate = ["usedesk_email.install.ensure_roles", "usedesk_email.install.index_file_hashes"]
before_uninstall = "usedesk_email.uninstall.before_uninstall"
after_uninstall = "usedesk_email.uninstall.after_uninstall"

scheduler_events = {
	"cron": {
		"*/5 * * * *": ["usedesk_email.poll.enqueue_polls"],
		"* * * * *": ["usedesk_email.outgoing.retry_due"],
	},
}

doc_events = {
	"Communication": {
		"after_insert": "usedesk_email.outgoing.queue_sending",
	},
}

# The desk's e-mail composer on a Ticket: send through the channel, never also via Frappe.
override_whitelisted_methods = {
	"frappe.core.doctype.communication.email.make": "usedesk_email.api.make",
}

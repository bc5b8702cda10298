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
after_migrate = "usedesk_email.install.ensure_roles"

scheduler_events = {
	"cron": {
		"*/5 * * * *": ["usedesk_email.poll.enqueue_polls"],
	},
}

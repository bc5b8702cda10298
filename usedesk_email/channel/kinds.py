"""The connection types of a channel, as its Incoming and Outgoing Type fields store them."""

INTERNAL = "Internal"  # incoming: forwarded to the endpoint or the MTA; outgoing: the site's Email Queue
EXTERNAL = "External"  # the channel's own IMAP and SMTP servers
OFFICE_365 = "Office 365"  # Microsoft's servers, with OAuth 2.0 instead of passwords

# Connections with a server of their own (host, port, encryption), which the poll reads.
OWN_SERVER = (EXTERNAL, OFFICE_365)

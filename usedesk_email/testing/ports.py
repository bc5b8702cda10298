"""Free TCP ports on 127.0.0.1, picked at run time so several test runs can coexist."""

import socket

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
	"""A port nobody listens on right now.

	For servers that need a port number in a config file before they start; the port
	is released before the server binds it, so a caller retries if another process
	took it in between.
	"""
	with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
		probe.bind((host, 0))
		return probe.getsockname()[1]

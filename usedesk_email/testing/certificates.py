"""Throwaway TLS certificates for the test servers, made with the openssl CLI.

Clients under test keep certificate checks on; they trust the test CA through a CA
bundle option, exactly as an admin would for a server with a private CA.
"""

import secrets
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from usedesk_email.testing.ports import HOST

_DAYS = "7"


@dataclass(frozen=True)
class Certificates:
	ca_file: Path  # trust this to verify the server
	cert_file: Path
	key_file: Path


class CertificateError(RuntimeError):
	"""openssl could not make the test certificates."""


def make_certificates(directory: Path, hosts: Iterable[str] = ("localhost", HOST)) -> Certificates:
	"""A test CA and a server certificate it signs for ``hosts`` (names or IP addresses).

	The server certificate carries every host as a subjectAltName (clients ignore the CN)
	and the key identifiers that strict X.509 verification asks for.
	"""
	directory = Path(directory)
	directory.mkdir(parents=True, exist_ok=True)
	hosts = list(hosts)
	names = ", ".join(f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts)
	(directory / "server.ext").write_text(
		"basicConstraints = critical, CA:FALSE\n"
		"keyUsage = critical, digitalSignature, keyEncipherment\n"
		"extendedKeyUsage = serverAuth\n"
		f"subjectAltName = {names}\n"
		"subjectKeyIdentifier = hash\n"
		"authorityKeyIdentifier = keyid:always\n"
	)
	ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
	commands = [
		["req", "-x509", *ec_key, "-keyout", "ca.key", "-out", "ca.pem", "-days", _DAYS,
			"-subj", "/CN=usedesk_email test CA",
			"-addext", "basicConstraints=critical,CA:TRUE",
			"-addext", "keyUsage=critical,keyCertSign,cRLSign"],
		["req", "-new", *ec_key, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={hosts[0]}"],
		["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
			"-set_serial", str(secrets.randbits(63)), "-days", _DAYS,
			"-extfile", "server.ext", "-out", "server.pem"],
	]  # fmt: skip
	for command in commands:
		done = subprocess.run(["openssl", *command], cwd=directory, capture_output=True, text=True)
		if done.returncode != 0:
			raise CertificateError(f"openssl {command[0]} failed: {done.stderr.strip()}")
	return Certificates(
		ca_file=directory / "ca.pem", cert_file=directory / "server.pem", key_file=directory / "server.key"
	)

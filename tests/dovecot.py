"""A real IMAP server for the tests: Debian's Dovecot (package dovecot-imapd), started
in a temporary folder on free ports with a passwd-file of users, no system service.

Two listeners: plain IMAP with STARTTLS, and implicit TLS, both with a certificate made
here for 127.0.0.1 (``ca_file``: trust it through SSL_CERT_FILE).
"""

import datetime as dt
import imaplib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.config import ImapSettings
from tests.conftest import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
_users = itertools.count(1)
PASSWORD = "mot-de-passe"


@dataclass
class Dovecot:
    port: int  # plain IMAP, STARTTLS offered
    tls_port: int  # implicit TLS
    root: Path
    ca_file: Path
    log: Path

    def add_user(self, password: str = PASSWORD) -> str:
        """A new user with an empty mailbox, in a passwd-file of its own (Dovecot re-reads
        a changed passwd-file at most once a second; a new file is read at once)."""
        name = f"retours{next(_users)}"
        (self.root / "users" / name).write_text(f"{name}:{{PLAIN}}{password}\n")
        return name

    def settings(self, user: str, password: str = PASSWORD, tls: str = "none") -> ImapSettings:
        port = self.tls_port if tls == "implicit" else self.port
        return ImapSettings("127.0.0.1", port, user, password, tls=tls)

    @contextmanager
    def client(self, user: str, password: str = PASSWORD) -> Iterator[imaplib.IMAP4]:
        """The test's own IMAP session (the mail server's side: APPEND, checks)."""
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            conn.login(user, password)
            yield conn
        finally:
            conn.logout()


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _accounts() -> tuple[str, str, int, int]:
    """Who runs the internal and login processes, and who owns the mail.

    As root, Dovecot refuses to run its login processes as root: Debian's package
    creates the users dovecot and dovenull for that. Otherwise everything runs as us.
    """
    if os.geteuid() == 0:
        mail = pwd.getpwnam("dovecot")
        return "dovecot", "dovenull", mail.pw_uid, mail.pw_gid
    me = pwd.getpwuid(os.getuid())
    return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid


@contextmanager
def dovecot_server() -> Iterator[Dovecot]:
    # Not under pytest's tmp_path: its parents are private to us, and the mail
    # processes (another user when we are root) must reach their home.
    root = Path(tempfile.mkdtemp(prefix="lettrine-dovecot-"))
    root.chmod(0o755)
    internal, login, uid, gid = _accounts()
    home = root / "home"
    home.mkdir()
    os.chown(home, uid, gid)
    (root / "users").mkdir()
    cert, key = _certificate(root)
    port, tls_port = free_port(), free_port()
    log = root / "dovecot.log"
    (root / "dovecot.conf").write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {log}
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {internal}
default_internal_group = {internal}
default_login_user = {login}
first_valid_uid = {uid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # No growing delay after failed logins (the wrong-password tests, all from 127.0.0.1).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""
    )
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_greeting(port, process, log)
        yield Dovecot(port, tls_port, root, cert, log)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_greeting(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            logged = log.read_text() if log.exists() else ""
            raise RuntimeError(f"dovecot exited: {stderr}{logged}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(100).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)  # the master has not bound its listener yet
    raise RuntimeError(f"dovecot did not greet on port {port} within 15 s")

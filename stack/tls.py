"""A throwaway certificate authority for the local stack's TLS listener.

With `stack.secure_listeners` the broker serves TLS with a certificate signed by a CA made
here, and asks every client for a certificate signed by the same CA. All of it lives in
`stack.tls_dir`: `ca.pem` (what a client trusts: kafka.ssl_ca_location), `client.pem` and
`client.key` (a client certificate, its key encrypted with the local password:
kafka.ssl_certificate_location, kafka.ssl_key_location, kafka.ssl_key_password), and the
broker's own key and certificate. Made once with openssl; nothing here is a real secret.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from seam.errors import PrerequisiteError, StackError
from seam.settings import LOCAL_PASSWORD, LOCAL_USER, StackSettings

_DAYS = "3650"


@dataclass(frozen=True)
class TlsFiles:
    """The files of the local CA, by what reads them."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def broker_keystore(self) -> Path:
        """The broker's PEM key store: its private key, then its certificate."""
        return self.dir / "broker-keystore.pem"

    @property
    def client_certificate(self) -> Path:
        return self.dir / "client.pem"

    @property
    def client_key(self) -> Path:
        """The client's private key, encrypted with LOCAL_PASSWORD."""
        return self.dir / "client.key"


def _openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise PrerequisiteError(
            "openssl is not installed; the local stack's TLS listener needs it to make its certificates",
            hint="install it (apt-get install openssl), or start the stack without --secure-listeners",
        )
    return found


def _run(*args: str, cwd: Path) -> None:
    result = subprocess.run([_openssl(), *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(
            f"making the local TLS certificates failed (openssl {args[0]}): {result.stderr.strip()[-300:]}",
            hint="delete the stack's tls directory and run seam stack up again",
        )


def _subject_alt_names(host: str) -> str:
    names = ["DNS:localhost"]
    try:
        ipaddress.ip_address(host)
        names.append(f"IP:{host}")
    except ValueError:
        names.append(f"DNS:{host}")
    return ",".join(dict.fromkeys(names))


def ensure_tls(settings: StackSettings) -> TlsFiles:
    """The local CA and certificates, made on the first call (into a scratch directory that
    is renamed when complete, so an interrupted run leaves nothing half-made)."""
    files = TlsFiles(settings.tls_dir)
    if files.ca.exists():
        return files
    scratch = files.dir.with_name(files.dir.name + ".init")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    scratch.chmod(0o700)
    (scratch / "san.ext").write_text(f"subjectAltName={_subject_alt_names(settings.host)}\n")
    key_args = ("-newkey", "rsa:2048", "-nodes")
    _run(
        "req",
        "-x509",
        *key_args,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        _DAYS,
        "-subj",
        "/CN=seam local stack CA",
        cwd=scratch,
    )
    for name, cn in (("broker", settings.host), ("client", LOCAL_USER)):
        _run(
            "req",
            *key_args,
            "-keyout",
            f"{name}.plain.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={cn}",
            cwd=scratch,
        )
        extra = ("-extfile", "san.ext") if name == "broker" else ()
        _run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            _DAYS,
            *extra,
            cwd=scratch,
        )
    # The broker reads an unencrypted PKCS#8 key followed by its certificate; the client's
    # key is encrypted, as a production client key usually is (kafka.ssl_key_password).
    (scratch / "broker-keystore.pem").write_text(
        (scratch / "broker.plain.key").read_text() + (scratch / "broker.pem").read_text()
    )
    _run(
        "pkcs8",
        "-topk8",
        "-in",
        "client.plain.key",
        "-out",
        "client.key",
        "-v2",
        "aes-256-cbc",
        "-passout",
        f"pass:{LOCAL_PASSWORD}",
        cwd=scratch,
    )
    for leftover in ("client.plain.key", "broker.csr", "client.csr", "ca.srl", "san.ext"):
        (scratch / leftover).unlink(missing_ok=True)
    shutil.rmtree(files.dir, ignore_errors=True)
    scratch.rename(files.dir)
    return files

"""The proxy's optional TLS (`serve --tls-cert FILE --tls-key FILE`): one server context from a certificate and
its private key, the key file held to the proxy key file's rule (ours or root's, no access for others).

The key is loaded from the descriptor that was checked (`/dev/fd/N`), never by its path again: a file swapped in
between the check and the load is not the one loaded.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from vertex_env.errors import ConfigError, UsageError
from vertex_env.system.loopback import private_file

__all__ = ["check_tls_pair", "server_context"]


def check_tls_pair(cert: Path | None, key: Path | None) -> tuple[Path, Path] | None:
    """Both or neither: (cert, key), None for plain http; UsageError naming the missing one."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = ("--tls-cert", "--tls-key") if key is None else ("--tls-key", "--tls-cert")
        raise UsageError(f"{given} needs {missing}: give both files, or neither for plain http")
    return cert, key


def _no_passphrase() -> bytes:
    # OpenSSL would otherwise ask on the terminal for an encrypted key's passphrase.
    raise ConfigError("an encrypted TLS key needs a passphrase")


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 and up, Python's default ciphers) for the certificate chain in `cert` and
    the unencrypted private key in `key`; ConfigError with one line when either cannot be used."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with private_file(key, "TLS key file") as fd:
        try:
            context.load_cert_chain(str(cert), f"/dev/fd/{fd}", password=_no_passphrase)
        except ConfigError:
            raise ConfigError(
                f"TLS key file {key} is encrypted: give an unencrypted key (mode 0600)",
                hint="e.g. openssl pkey -in KEY -out KEY.plain",
            ) from None
        except ssl.SSLError as err:
            raise ConfigError(
                f"cannot use TLS certificate {cert} with key {key}: {err.reason or 'not PEM, or they do not match'}"
            ) from None
        except OSError as err:
            raise ConfigError(
                f"cannot read TLS certificate {cert}: {err.strerror or err}"
            ) from None
    return context

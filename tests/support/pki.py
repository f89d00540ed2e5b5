"""Certificates made at test time with the openssl command: a CA, a broker, clients."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Issued:
    """A certificate and its key."""

    cert: Path
    key: Path


class TestCA:
    """A throw-away certificate authority in ``directory``."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str = "edge-agent test CA") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.slug = name.replace(" ", "-").lower()
        self.cert = self.dir / f"{self.slug}.pem"
        self.key = self.dir / f"{self.slug}.key"
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(self.key), "-out", str(self.cert), "-days", "2", "-subj", f"/CN={name}",
            cwd=self.dir,
        )  # fmt: skip

    def issue(self, cn: str, *, server: bool = False) -> Issued:
        """A certificate for ``cn``: a broker's (names 127.0.0.1 and localhost) or a client's."""
        key = self.dir / f"{cn}.key"
        csr = self.dir / f"{cn}.csr"
        cert = self.dir / f"{cn}.pem"
        ext = self.dir / f"{cn}.ext"
        ext.write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
            if server
            else "extendedKeyUsage=clientAuth\n",
            encoding="utf-8",
        )
        _openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}",
            cwd=self.dir,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
            cwd=self.dir,
        )  # fmt: skip
        return Issued(cert, key)
